package bpfprogs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Shapes of /proc/PID/fdinfo files (Documentation/filesystems/proc.rst).
const (
	progFD = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t26\nprog_jited:\t1\n" +
		"prog_tag:\t0123456789abcdef\nmemlock:\t4096\nprog_id:\t%d\nrun_time_ns:\t0\nrun_cnt:\t0\n"
	linkFD = "pos:\t0\nflags:\t02000000\nmnt_id:\t15\nino:\t1057\nlink_type:\ttracing\nlink_id:\t9\n" +
		"prog_tag:\t0123456789abcdef\nprog_id:\t%d\nattach_type:\t24\n"
	mapFD  = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nmap_type:\t27\nmap_id:\t41\n"
	fileFD = "pos:\t12\nflags:\t0100000\nmnt_id:\t25\nino:\t4242\n"
)

// fakeProcess is a Process whose fdinfo directory holds files.
func fakeProcess(t *testing.T, files map[string]string) *Process {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &Process{fdinfo: r}
}

func TestHeld(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		want    []ebpf.ProgramID
		wantErr bool
	}{
		{"no descriptors", nil, nil, false},
		{"no BPF", map[string]string{"0": fileFD, "1": fileFD, "5": mapFD}, nil, false},
		{
			name:  "programs and links, each id once",
			files: map[string]string{"3": fmt.Sprintf(progFD, 77), "4": fmt.Sprintf(linkFD, 77), "5": mapFD, "6": fmt.Sprintf(linkFD, 12)},
			want:  []ebpf.ProgramID{12, 77},
		},
		{"malformed id", map[string]string{"3": "prog_id:\tseven\n"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fakeProcess(t, tt.files).Held()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Held() error %v, want error: %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Held() = %v, want %v", got, tt.want)
			}
		})
	}
}

// A Process that has exited holds nothing: it reads the process it was
// opened for, not whatever process gets its pid next.
func TestHeldAfterExit(t *testing.T) {
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p, err := Open(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Held(); err != nil {
		t.Fatalf("Held() of a running process: %v", err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	got, err := p.Held()
	if err != nil || got != nil {
		t.Errorf("Held() after exit = %v, %v; want nothing, no error", got, err)
	}
}

// Held finds a program this process loaded, Loaded reports it while a
// descriptor keeps it, and WaitGone sees it go once the last one closes.
func TestLoadedProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: loading a BPF program and reading others' ids needs root")
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "bpfprogs_test", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatalf("load a socket filter: %v", err)
	}
	info, err := prog.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("the kernel gave no program id")
	}
	held, err := Held(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(held, id) {
		t.Errorf("Held(self) = %v, lacks the program just loaded (id %d)", held, id)
	}
	left, err := Loaded([]ebpf.ProgramID{id})
	if err != nil || len(left) != 1 || left[0] != (Program{ID: id, Name: "bpfprogs_test"}) {
		t.Errorf("Loaded(%d) = %v, %v; want the program", id, left, err)
	}
	if err := prog.Close(); err != nil {
		t.Fatal(err)
	}
	if left, err := WaitGone([]ebpf.ProgramID{id}, 5*time.Second); err != nil || len(left) != 0 {
		t.Errorf("WaitGone after Close = %v, %v; want none left", left, err)
	}
}

// TestClosedWhileRead closes a descriptor between the opening of its
// fdinfo file and the reading, as a process that closes its programs while
// Held looks does: that descriptor holds nothing, it is no error.
func TestClosedWhileRead(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	open := func() *os.File {
		f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", r.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	f1, f2 := open(), open()
	defer f1.Close()
	defer f2.Close()
	r.Close()
	if _, err := appendProgIDs(nil, f1); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("reading the fdinfo of a closed descriptor: %v, want ENOENT (what Held must tolerate)", err)
	}
	ids, err := readProgIDs([]ebpf.ProgramID{5}, f2)
	if err != nil || !slices.Equal(ids, []ebpf.ProgramID{5}) {
		t.Errorf("readProgIDs = %v, %v; want [5], no error", ids, err)
	}
}

package symbolize

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeProc writes a /proc/PID of a process that does not exist: its stat
// (with the start time), maps and status, and an empty root directory.
func fakeProc(t *testing.T, procRoot string, pid uint32, start uint64, maps string) string {
	t.Helper()
	dir := filepath.Join(procRoot, fmt.Sprint(pid))
	if err := os.MkdirAll(filepath.Join(dir, "root", "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	stat := fmt.Sprintf("%d (a) b) S%s %d 0 0\n", pid, strings.Repeat(" 0", 18), start)
	status := fmt.Sprintf("Name:\ta\nNSpid:\t%d\t42\n", pid)
	for name, text := range map[string]string{"stat": stat, "maps": maps, "status": status} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cBinary builds cProgram with gcc and returns its path.
func cBinary(t *testing.T) string {
	t.Helper()
	requireGCC(t)
	dir := build(t, map[string]string{"closer.c": cProgram}, "gcc", "-O1", "-fno-omit-frame-pointer", "-o", "closer", "closer.c")
	return filepath.Join(dir, "closer")
}

// textMapping returns a maps line that maps the executable segment of the
// binary at path (as seen at seen in the process) at base, and the address
// of a function in it.
func textMapping(t *testing.T, path, seen string, base uint64, fn string) (line string, ip uint64) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var load *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			load = p
		}
	}
	syms, err := f.Symbols()
	if err != nil || load == nil {
		t.Fatalf("%s: %v", path, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	pageOff, pageVaddr := load.Off&^0xfff, load.Vaddr&^0xfff
	start := base + pageVaddr
	end := start + ((load.Off + load.Filesz - pageOff + 0xfff) &^ 0xfff)
	line = fmt.Sprintf("%x-%x r-xp %08x fd:01 %d                      %s\n", start, end, pageOff, st.Ino, seen)
	for _, s := range syms {
		if s.Name == fn {
			return line, base + s.Value + 4
		}
	}
	t.Fatalf("%s: no %s", path, fn)
	return "", 0
}

func copyFile(t *testing.T, from, to string, patch func([]byte)) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if patch != nil {
		patch(b)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestContainerRoot: files are opened in the process's root; a symbolic
// link in it that points outside resolves inside the root.
func TestContainerRoot(t *testing.T) {
	bin := cBinary(t)
	procRoot := t.TempDir()
	root := filepath.Join(procRoot, "100", "root")
	inside := filepath.Join(root, "app", "closer")
	copyFile(t, bin, inside, nil)
	okLine, ip := textMapping(t, inside, "/app/closer", 0x555500000000, "close_without_draining")
	if err := os.Symlink("/app/closer", filepath.Join(root, "app", "link")); err != nil {
		t.Fatal(err)
	}
	// A link to the host's copy, by its absolute host path: must not open.
	if err := os.Symlink(bin, filepath.Join(root, "app", "escape")); err != nil {
		t.Fatal(err)
	}
	linkLine, linkIP := textMapping(t, inside, "/app/link", 0x555600000000, "main")
	escLine, escIP := textMapping(t, bin, "/app/escape", 0x555700000000, "main")
	fakeProc(t, procRoot, 100, 7, okLine+linkLine+escLine)

	s := New(Options{ProcRoot: procRoot})
	got := s.Symbolize(100, []RawFrame{{IP: ip}, {IP: linkIP + 1}, {IP: escIP}})
	if got[0].Func != "close_without_draining" || got[0].Module != "/app/closer" || got[0].BuildID == "" {
		t.Errorf("frame in /app/closer: %+v", got[0])
	}
	if got[1].Func != "main" || got[1].Module != "/app/link" {
		t.Errorf("frame in /app/link: %+v", got[1])
	}
	if got[2].Func != "" || got[2].BuildID != "" || got[2].Module != "/app/escape" {
		t.Errorf("frame in /app/escape, a link out of the root: %+v, want no symbols", got[2])
	}
}

// TestJIT: anonymous executable code is named from the process's perf map
// (written under its own pid, 42 here, in its root's /tmp), else [jit].
func TestJIT(t *testing.T) {
	procRoot := t.TempDir()
	maps := "7f0000000000-7f0000100000 r-xp 00000000 00:00 0 \n" +
		"7fff00000000-7fff00002000 r-xp 00000000 00:00 0                          [vdso]\n"
	dir := fakeProc(t, procRoot, 200, 1, maps)
	perf := filepath.Join(dir, "root", "tmp", "perf-42.map")
	if err := os.WriteFile(perf, []byte("7f0000001000 100 Interpreter\n7f0000002000 0x80 LFoo;::bar\n7f0000001000 10 recompiled\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Options{ProcRoot: procRoot})
	for _, tc := range []struct {
		ip   uint64
		want Frame
	}{
		{0x7f0000001004, Frame{Func: "recompiled", JIT: true, Offset: 0x7f0000001004}},
		{0x7f0000001010, Frame{Func: "Interpreter", JIT: true, Offset: 0x7f0000001010}},
		{0x7f000000207f, Frame{Func: "LFoo;::bar", JIT: true, Offset: 0x7f000000207f}},
		{0x7f0000002080, Frame{Func: "[jit]", JIT: true, Offset: 0x7f0000002080}},
		{0x7fff00000123, Frame{Module: "[vdso]", Offset: 0x123}},
		{0x100, Frame{Offset: 0x100}},
	} {
		if got := s.Symbolize(200, []RawFrame{{IP: tc.ip}}); got[0] != tc.want {
			t.Errorf("%#x: %+v, want %+v", tc.ip, got[0], tc.want)
		}
	}
	// The map grows: read again.
	f, err := os.OpenFile(perf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("7f0000003000 10 later\n")
	f.Close()
	if got := s.Symbolize(200, []RawFrame{{IP: 0x7f0000003001}}); got[0].Func != "later" {
		t.Errorf("after the perf map grew: %+v", got[0])
	}
	// A FIFO in place of the map must not block.
	os.Remove(perf)
	if err := syscall.Mkfifo(perf, 0o644); err != nil {
		t.Fatal(err)
	}
	s = New(Options{ProcRoot: procRoot})
	if got := s.Symbolize(200, []RawFrame{{IP: 0x7f0000001004}}); got[0] != (Frame{Func: "[jit]", JIT: true, Offset: 0x7f0000001004}) {
		t.Errorf("with a FIFO as perf map: %+v", got[0])
	}
}

// TestPidReuse: frames of a learned process are resolved with its mappings
// even when its pid now belongs to another process.
func TestPidReuse(t *testing.T) {
	bin := cBinary(t)
	procRoot := t.TempDir()
	copyFile(t, bin, filepath.Join(procRoot, "300", "root", "bin", "a"), nil)
	line, ip := textMapping(t, filepath.Join(procRoot, "300", "root", "bin", "a"), "/bin/a", 0x400000000, "main")
	fakeProc(t, procRoot, 300, 1, line)
	s := New(Options{ProcRoot: procRoot})
	s.Learn(300)
	fakeProc(t, procRoot, 300, 2, "") // another process, nothing mapped
	if got := s.Symbolize(300, []RawFrame{{IP: ip}}); got[0].Func != "main" || got[0].Module != "/bin/a" {
		t.Errorf("after the pid was reused: %+v", got[0])
	}
	// A new Symbolizer knows only the new process: unknown.
	if got := New(Options{ProcRoot: procRoot}).Symbolize(300, []RawFrame{{IP: ip}}); !got[0].Unknown() {
		t.Errorf("unlearned: %+v", got[0])
	}
}

// TestCacheBounds: at most MaxModules files and MaxProcesses processes are
// kept; an evicted file's descriptor is closed, and it is found again
// while its process lives.
func TestCacheBounds(t *testing.T) {
	bin := cBinary(t)
	id := gnuBuildID(t, bin)
	procRoot := t.TempDir()
	ips := map[uint32]uint64{}
	ids := map[uint32][20]byte{}
	for i, pid := range []uint32{401, 402, 403} {
		path := filepath.Join(procRoot, fmt.Sprint(pid), "root", "bin", "x")
		newID := id
		newID[0] ^= byte(i + 1)
		copyFile(t, bin, path, func(b []byte) {
			j := bytes.Index(b, id[:])
			if j < 0 {
				t.Fatal("no build id in the binary")
			}
			copy(b[j:], newID[:])
		})
		line, ip := textMapping(t, path, "/bin/x", 0x400000000, "close_without_draining")
		fakeProc(t, procRoot, pid, 1, line)
		ips[pid], ids[pid] = ip, newID
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	s := New(Options{ProcRoot: procRoot, MaxModules: 2, MaxProcesses: 2})
	for _, pid := range []uint32{401, 402, 403} {
		s.Learn(pid)
	}
	want := Stats{Modules: 2, Processes: 2, ModuleEvictions: 1, ProcessEvictions: 1}
	if got := s.Stats(); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
	if n := fds() - before; n != 2 {
		t.Errorf("%d more open files, want 2 (one per module kept)", n)
	}
	// 401 was evicted from both caches; it lives: learned again.
	for _, pid := range []uint32{401, 402, 403} {
		frames := []RawFrame{{IP: ips[pid]}, {HasBuildID: true, BuildID: ids[pid], Offset: 0}}
		if got := s.Symbolize(pid, frames); got[0].Func != "close_without_draining" {
			t.Errorf("pid %d: %+v", pid, got[0])
		}
	}
	if got := s.Stats(); got.Modules != 2 || got.Processes != 2 {
		t.Errorf("stats %+v over the bounds", got)
	}
	s.Close()
	if n := fds() - before; n != 0 {
		t.Errorf("%d files open after Close", n)
	}
}

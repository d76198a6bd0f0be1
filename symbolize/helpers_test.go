package symbolize

import (
	"bufio"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
)

// build writes the files to a temporary directory and runs the command
// there, returning the directory.
func build(t testing.TB, files map[string]string, name string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	for n, text := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return dir
}

// child is a test program that printed its addresses and waits for a byte
// on its standard input to exit.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines []string // what it printed before "ready"
}

func start(t testing.TB, path string) *child {
	t.Helper()
	cmd := exec.Command(path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() { c.exit(t) })
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				done <- nil
				return
			}
			c.lines = append(c.lines, sc.Text())
		}
		done <- fmt.Errorf("%s ended before ready: %v", path, sc.Err())
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s printed no ready line in 30s", path)
	}
	return c
}

func (c *child) pid() uint32 { return uint32(c.cmd.Process.Pid) }

// exit makes the child return and waits for it.
func (c *child) exit(t testing.TB) {
	t.Helper()
	if c.cmd.ProcessState != nil {
		return
	}
	c.stdin.Write([]byte{'\n'})
	c.stdin.Close()
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("child: %v", err)
	}
}

// value returns the field after the line's first word key.
func (c *child) value(t testing.TB, key string, field int) string {
	t.Helper()
	for _, l := range c.lines {
		f := strings.Fields(l)
		if len(f) > field && f[0] == key {
			return f[field]
		}
	}
	t.Fatalf("no %q line in %q", key, c.lines)
	return ""
}

func (c *child) hex(t testing.TB, key string, field int) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimPrefix(c.value(t, key, field), "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// kernelFrame computes what a BPF build-id stack map records for ip in
// process pid: the file offset (ip - vm_start + vm_pgoff*PAGE_SIZE, from
// /proc/PID/maps) with the build id of the file.
func kernelFrame(t testing.TB, pid uint32, ip uint64, buildID [20]byte) RawFrame {
	t.Helper()
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(maps), "\n") {
		var start, end, off uint64
		var perms string
		if _, err := fmt.Sscanf(l, "%x-%x %s %x", &start, &end, &perms, &off); err != nil {
			continue
		}
		if ip >= start && ip < end {
			return RawFrame{BuildID: buildID, HasBuildID: true, Offset: ip - start + off}
		}
	}
	t.Fatalf("%#x is in no mapping of %d", ip, pid)
	return RawFrame{}
}

// gnuBuildID reads the .note.gnu.build-id section with debug/elf.
func gnuBuildID(t testing.TB, path string) [20]byte {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		t.Fatalf("%s has no .note.gnu.build-id", path)
	}
	data, err := s.Data()
	if err != nil || len(data) < 16+20 {
		t.Fatalf("%s: build id note: %v (%d bytes)", path, err, len(data))
	}
	var id [20]byte
	copy(id[:], data[16:16+20])
	return id
}

// lineOf returns the 1-based line of the source that holds marker.
func lineOf(t testing.TB, src, marker string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, marker) {
			return i + 1
		}
	}
	t.Fatalf("no %q in the source", marker)
	return 0
}

func requireGCC(t testing.TB) {
	t.Helper()
	testenv.RequireTool(t, "gcc", "gcc")
	testenv.RequireTool(t, "strip", "binutils")
}

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// buildCLI compiles the command once per test, or returns the prebuilt
// binary named by TCPCLOSE_TRACE_BIN (where the suite runs without a Go
// toolchain, as in `make vmtest`).
func buildCLI(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("TCPCLOSE_TRACE_BIN"); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("TCPCLOSE_TRACE_BIN: %v", err)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "tcpclose-trace")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/tcpclose-trace")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func waitForFile(t *testing.T, path string, cmd *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if exited(cmd) {
			t.Fatalf("tracer exited before it was ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not created within 30 s", path)
}

// exited reports whether cmd's process has ended: reaped, or a zombie
// nobody has waited for yet.
func exited(cmd *exec.Cmd) bool {
	if cmd.ProcessState != nil {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return true
	}
	// pid (comm) state ...: the comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z'
}

// TestCLIUnreadClose is the acceptance check: a process that closes a socket
// with 1234 unread bytes appears within a second as unread_close with its
// own pid and comm, in NDJSON, and the exit summary carries the counters.
func TestCLIUnreadClose(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	ns := newNamespace(t)

	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, "-o", "json", "--netns", strconv.FormatUint(uint64(ns.Inode), 10),
		"--ready-file", ready, "--duration", "60s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	type line struct {
		rec output.Record
		at  time.Time
	}
	lines := make(chan line, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var rec output.Record
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Errorf("not JSON: %q: %v", sc.Text(), err)
				continue
			}
			lines <- line{rec, time.Now()}
		}
		close(lines)
	}()
	waitForFile(t, ready, cmd)

	r, err := scenario.Run(ns, "unread_close", "ipv4")
	if err != nil {
		t.Fatal(err)
	}
	var found *line
	timeout := time.After(5 * time.Second)
	for found == nil {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tracer output ended; stderr: %s", stderr.String())
			}
			if l.rec.Kind == "unread_close" {
				found = &l
			}
		case <-timeout:
			t.Fatal("no unread_close within 5 s")
		}
	}
	rec := found.rec
	if rec.UnreadBytes != 1234 || int(rec.PID) != r.Closer.PID || rec.Comm != r.Closer.Comm ||
		rec.LPort != r.CloserPort || rec.Family != "ipv4" || rec.Netns != ns.Inode {
		t.Errorf("unread_close = %+v, want unread 1234 pid %d comm %s lport %d", rec, r.Closer.PID, r.Closer.Comm, r.CloserPort)
	}
	when, err := time.Parse(time.RFC3339Nano, rec.Time)
	if err != nil {
		t.Fatalf("time %q: %v", rec.Time, err)
	}
	if lag := found.at.Sub(when); lag > time.Second || lag < 0 {
		t.Errorf("event printed %v after the close, want within 1 s", lag)
	}
	t.Logf("close to stdout: %v", found.at.Sub(when))

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tracer exit: %v; stderr: %s", err, stderr.String())
	}
	// The close's reset: TCP_ABORT_ON_CLOSE where the kernel names it.
	closeReset := "resets sent, " + kernelResets(t).Reason("TCP_ABORT_ON_CLOSE")
	for _, want := range []string{"SUMMARY", "tct-closer", "unread_close", closeReset, "ring records lost"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestCLIErrors checks that bad input gives one clear line and a non-zero exit.
func TestCLIErrors(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	tests := []struct {
		name     string
		wrap     []string // command prefix, e.g. to drop capabilities
		args     []string
		wantCode int
		wantMsg  string
	}{
		{name: "bad flag", args: []string{"--port", "x"}, wantCode: 2, wantMsg: "want a positive integer"},
		{name: "bad output", args: []string{"-o", "xml"}, wantCode: 2, wantMsg: "-o must be table or json"},
		{name: "no capabilities", wrap: []string{"setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"},
			args: []string{"--duration", "1s"}, wantCode: 1, wantMsg: "need root, or CAP_BPF and CAP_PERFMON"},
		{name: "unwritable ready file", args: []string{"--ready-file", "/proc/no/such/dir/ready", "--duration", "1s"},
			wantCode: 1, wantMsg: "write ready file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := append(append(tt.wrap[:len(tt.wrap):len(tt.wrap)], bin), tt.args...)
			if len(tt.wrap) > 0 {
				if _, err := exec.LookPath(tt.wrap[0]); err != nil {
					t.Skipf("skipped: %s not installed", tt.wrap[0])
				}
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tt.wantCode {
				t.Fatalf("exit = %v, want code %d; stderr: %s", err, tt.wantCode, stderr.String())
			}
			msg := stderr.String()
			if !strings.Contains(msg, tt.wantMsg) || !strings.HasPrefix(msg, "tcpclose-trace: ") {
				t.Errorf("stderr = %q, want one line with %q", msg, tt.wantMsg)
			}
			if tt.wantCode == 1 && strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Errorf("stderr has more than one line: %q", msg)
			}
		})
	}
}

// TestMemlockLimit runs the tracer with a locked-memory limit of 0 that it
// may not raise (no CAP_SYS_RESOURCE). Before 5.11 the kernel charges BPF
// maps to that limit: the tracer must stop with one line saying the limit
// must be raised, before loading anything. From 5.11 on (memory cgroup
// accounting) the limit does not matter and the tracer runs.
func TestMemlockLimit(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipped: setpriv (util-linux) is not installed")
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("release %q: %v", release, err)
	}
	charged := major < 5 || major == 5 && minor < 11
	cmd := exec.Command("setpriv", "--bounding-set=-sys_resource", "--inh-caps=-sys_resource", "--",
		"sh", "-c", `ulimit -l 0 && exec "$0" --duration 1s`, bin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	msg := stderr.String()
	if !charged {
		if err != nil {
			t.Fatalf("kernel %s (memory cgroup accounting): %v; stderr: %s", release, err, msg)
		}
		return
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("kernel %s: exit = %v, want code 1; stderr: %s", release, err, msg)
	}
	if !strings.HasPrefix(msg, "tcpclose-trace: ") || !strings.Contains(msg, "locked-memory limit, which must be raised") ||
		strings.Count(strings.TrimSpace(msg), "\n") != 0 {
		t.Errorf("stderr = %q, want one line saying the locked-memory limit must be raised", msg)
	}
}

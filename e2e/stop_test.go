package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/syncbuf"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
)

// stopWithin is how long either mode may take to stop after a signal,
// whatever its output does: the product's promise, on the host.
const stopWithin = 3 * time.Second

// exitWork is about what, of that, is the process's own work once its
// deadline has passed (detaching the programs, exiting), not a timer: under
// emulation (the kernel matrix) it runs as many times slower as everything
// else, and the bound grows by that much.
const exitWork = 200 * time.Millisecond

// stopBound is stopWithin with exitWork scaled as the run's time limits are.
func stopBound() time.Duration { return stopWithin - exitWork + scenario.Scaled(exitWork) }

// stopped is a tracer or daemon started by startStoppable.
type stopped struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	waited chan error
	progs  *heldPrograms
}

// startStoppable starts `bin args...` (the trace mode, or `serve` when
// args[0] is "serve") on namespace ns with stdout, and returns once every
// program is attached.
func startStoppable(t *testing.T, bin string, ns *scenario.Namespace, stdout *os.File, args ...string) *stopped {
	t.Helper()
	args = append(args, "--netns", strconv.FormatUint(uint64(ns.Inode), 10))
	serve := len(args) > 0 && args[0] == "serve"
	var base, ready string
	if serve {
		target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		base = "http://" + target
		args = append(args, "--web.listen-address", target)
	} else {
		ready = filepath.Join(t.TempDir(), "ready")
		args = append(args, "--ready-file", ready)
	}
	s := &stopped{cmd: exec.Command(bin, args...), stderr: &syncbuf.Buffer{}, waited: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.progs = watchPrograms(t, s.cmd)
	go func() { s.waited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.waited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 30 s; stderr: %s", s.stderr.String())
		}
		if exited(s.cmd) {
			t.Fatalf("exited before it was ready; stderr: %s", s.stderr.String())
		}
		if serve {
			if resp, err := http.Get(base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
		} else if _, err := os.Stat(ready); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.progs.read()
	s.progs.requireLoaded(t)
	return s
}

// signal sends sig and asserts an exit with status 0 within stopBound,
// with every program gone.
func (s *stopped) signal(t *testing.T, sig syscall.Signal) time.Duration {
	t.Helper()
	s.progs.read()
	start := time.Now()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.waited:
		took := time.Since(start)
		if err != nil {
			t.Errorf("exit after %v: %v; stderr:\n%s", sig, err, s.stderr.String())
		}
		if took > stopBound() {
			t.Errorf("stopped %v after %v, want within %v", took, sig, stopBound())
		}
		s.progs.checkGone(t)
		return took
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.waited
		t.Fatalf("still running 10 s after %v; stderr:\n%s", sig, s.stderr.String())
	}
	return 0
}

// summaryCount returns the count on the summary line that starts with label.
func summaryCount(t *testing.T, summary, label string) uint64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + `\s+(\d+)$`).FindStringSubmatch(summary)
	if m == nil {
		t.Fatalf("no %q line in the summary:\n%s", label, summary)
	}
	n, _ := strconv.ParseUint(m[1], 10, 64)
	return n
}

// summaryEvents sums the EVENTS column of the summary's per-process rows.
func summaryEvents(t *testing.T, summary string) uint64 {
	t.Helper()
	_, rows, ok := strings.Cut(summary, "PID  ")
	if !ok {
		t.Fatalf("no SUMMARY table:\n%s", summary)
	}
	rows, _, _ = strings.Cut(rows, "\n\n")
	var n uint64
	for _, row := range strings.Split(rows, "\n")[1:] {
		f := strings.Fields(row)
		v, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		if err != nil {
			t.Fatalf("summary row %q: %v", row, err)
		}
		n += v
	}
	return n
}

// TestStopBlockedStdout stops each mode with SIGTERM while its stdout is a
// pipe that is open and full and that nobody reads: the process must exit
// with status 0 within 3 s, drop and count what it could not write, still
// print the summary (the daemon: its last log line) to stderr, and leave
// no program behind.
func TestStopBlockedStdout(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	for _, tt := range []struct {
		name string
		args []string
		tty  bool // stdout a terminal (a stalled ssh session), not a pipe
	}{
		{"trace json", []string{"-o", "json", "--all"}, false},
		{"trace table", []string{"--all"}, false},
		{"trace table on a terminal", []string{"--all"}, true},
		{"serve", []string{"serve", "--all"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			var r, w *os.File
			if tt.tty {
				r, w = testenv.OpenPTY(t)
			} else {
				var err error
				if r, w, err = os.Pipe(); err != nil {
					t.Fatal(err)
				}
				// The smallest pipe (a page) fills with a few events.
				if _, err := unix.FcntlInt(r.Fd(), unix.F_SETPIPE_SZ, 4096); err != nil {
					t.Fatal(err)
				}
			}
			defer r.Close() // open, never read
			s := startStoppable(t, bin, ns, w, tt.args...)
			// The child has the write end; the test keeps one to poll.
			probe, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", w.Fd()), os.O_WRONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer probe.Close()
			w.Close()

			// Connections in rounds until stdout is full: how many bytes a
			// round writes depends on the lines' widths, and a terminal
			// holds the pty's buffer (hundreds of kilobytes) where the
			// pipe holds a page. Bounded in rounds and time.
			const rounds, conns = 12, 300
			unread, round := 0, 1
			for ; ; round++ {
				mixed, err := scenario.RunMixed(ns, "ipv4", conns)
				if err != nil {
					t.Fatal(err)
				}
				unread += mixed.Count[scenario.MixedUnread]
				// Full: no room for another write (a write that does not
				// fit in the page in use waits, however few bytes that
				// holds). The tracer shows events within 100 ms.
				if waitFull(t, probe, 2*time.Second) {
					break
				}
				if round == rounds {
					// What the other end holds, and whether it is still the
					// terminal's master (an fd closed twice elsewhere in
					// this process would have taken it): for the next look.
					queued, qerr := unix.IoctlGetInt(int(r.Fd()), unix.TIOCINQ)
					var st unix.Stat_t
					serr := unix.Fstat(int(r.Fd()), &st)
					probe.Close()
					s.signal(t, syscall.SIGTERM)
					t.Fatalf("stdout has room after %d rounds of %d connections: the output did not block; "+
						"the other end (fd %d, rdev %d:%d, %v) holds %d bytes (%v); the tracer's stderr after SIGTERM:\n%s",
						rounds, conns, r.Fd(), unix.Major(st.Rdev), unix.Minor(st.Rdev), serr, queued, qerr, s.stderr.String())
				}
			}
			probe.Close() // so that the pipe ends with the process
			took := s.signal(t, syscall.SIGTERM)

			stderr := s.stderr.String()
			var unwritten uint64
			if strings.HasPrefix(tt.name, "serve") {
				m := regexp.MustCompile(`"msg":"stopping","events_dropped":(\d+),"events_unwritten":(\d+)`).FindStringSubmatch(stderr)
				if m == nil {
					t.Fatalf("no stopping line on stderr:\n%s", stderr)
				}
				unwritten, _ = strconv.ParseUint(m[2], 10, 64)
			} else {
				if !strings.Contains(stderr, "SUMMARY") || !strings.Contains(stderr, "tct-closer") {
					t.Errorf("no summary on stderr:\n%s", stderr)
				}
				unwritten = summaryCount(t, stderr, "events not written (stuck output)")
				// The kernel's counters are exact whatever the output did.
				if got := summaryCount(t, stderr, "unread_close"); got != uint64(unread) {
					t.Errorf("unread_close %d in the kernel counters, want the runs' %d", got, unread)
				}
			}
			if tt.name == "trace json" {
				// Exact: every event streamed (the SUMMARY rows) is a whole
				// line in the pipe or counted as not written.
				data, err := io.ReadAll(r) // the tracer is gone: up to EOF
				if err != nil {
					t.Fatal(err)
				}
				lines := uint64(bytes.Count(data, []byte{'\n'}))
				if streamed := summaryEvents(t, stderr); lines+unwritten != streamed {
					t.Errorf("%d lines in the pipe + %d not written = %d, want the %d events streamed",
						lines, unwritten, lines+unwritten, streamed)
				}
			}
			if unwritten == 0 {
				t.Errorf("nothing counted as not written, with stdout full:\n%s", stderr)
			}
			t.Logf("full after %d rounds of %d connections; stopped in %v; %d events not written", round, conns, took, unwritten)
		})
	}
}

// waitFull reports whether the pipe or terminal behind probe has no room
// for another write within wait.
func waitFull(t *testing.T, probe *os.File, wait time.Duration) bool {
	t.Helper()
	until := time.Now().Add(wait)
	for {
		fds := []unix.PollFd{{Fd: int32(probe.Fd()), Events: unix.POLLOUT}}
		if _, err := unix.Poll(fds, 0); err != nil {
			t.Fatal(err)
		}
		if fds[0].Revents&unix.POLLOUT == 0 {
			return true
		}
		if time.Now().After(until) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStopSIGHUP stops each mode with SIGHUP (a closed terminal): as with
// SIGTERM, status 0, the summary or the last log line, nothing left behind.
func TestStopSIGHUP(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	for _, tt := range []struct {
		name string
		args []string
		want string // on stdout (trace) or stderr (json)
	}{
		{"trace json", []string{"-o", "json"}, "KERNEL COUNTERS"},
		{"trace table", nil, "KERNEL COUNTERS"},
		{"serve", []string{"serve"}, `"msg":"stopping"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ns := newNamespace(t)
			out, err := os.CreateTemp(t.TempDir(), "stdout")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			s := startStoppable(t, bin, ns, out, tt.args...)
			if _, err := scenario.Run(ns, "unread_close", "ipv4"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // shown within 100 ms
			s.signal(t, syscall.SIGHUP)
			stdout, err := os.ReadFile(out.Name())
			if err != nil {
				t.Fatal(err)
			}
			all := string(stdout) + s.stderr.String()
			if !strings.Contains(all, tt.want) {
				t.Errorf("no %q after SIGHUP; stdout:\n%s\nstderr:\n%s", tt.want, stdout, s.stderr.String())
			}
			if !strings.Contains(string(stdout), "unread_close") {
				t.Errorf("the event is not on stdout:\n%s", stdout)
			}
		})
	}
}

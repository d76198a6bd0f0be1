// Package realapps is the end-to-end suite on real third-party programs from
// Debian's packages (nginx, haproxy, Python's http.server, curl), each run
// in a private network namespace: the tracer's events must agree exactly
// with the namespace's kernel counters and name the program that closed.
//
// It needs root. A missing program skips its test with the reason, or
// fails it where TCPCLOSE_REQUIRE_TOOLS=1 (as `make test` sets). With -v and
// REALAPPS_EVENTS=1 every event is logged.
package realapps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/harness"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
)

// families are the address families every case runs over.
var families = []string{"ipv4", "ipv6"}

// loopback is the namespace's loopback address of family, as in a URL host.
func loopback(family string) string {
	if family == "ipv6" {
		return "[::1]"
	}
	return "127.0.0.1"
}

// server is a program started inside the namespace, stopped (by pid) when
// the test ends.
type server struct {
	name   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	stdout bytes.Buffer
	done   chan struct{} // closed once the process has been reaped
	werr   error
}

// startServer runs path with args inside ns. It must stay in the foreground:
// it is stopped by its pid with SIGTERM (then SIGKILL) when t ends, and dies
// with the test binary (Pdeathsig).
func startServer(t *testing.T, ns *scenario.Namespace, path string, args ...string) *server {
	t.Helper()
	s := &server{name: filepath.Base(path), done: make(chan struct{})}
	s.cmd = ns.Command(context.Background(), path, args...)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that forked the child exits: keep
	// that thread until the child has been reaped.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := s.cmd.Start()
		errc <- err
		if err != nil {
			close(s.done)
			return
		}
		s.werr = s.cmd.Wait()
		close(s.done)
	}()
	if err := <-errc; err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
	t.Cleanup(func() { s.stop(t) })
	return s
}

// pid is the server's pid (ip netns exec execs the program itself).
func (s *server) pid() int { return s.cmd.Process.Pid }

// stop ends the server by its pid and waits for it, bounded.
func (s *server) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
		t.Errorf("%s exited early: %v\n%s", s.name, s.werr, s.stderr.String())
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		t.Errorf("%s did not exit on SIGTERM within 10 s", s.name)
	}
}

// waitListening waits until the server listens on port for each family.
func (s *server) waitListening(t *testing.T, ns *scenario.Namespace, port uint16, families ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, family := range families {
		if err := ns.WaitListening(ctx, family, port); err != nil {
			select {
			case <-s.done:
				t.Fatalf("%s exited: %v\n%s%s", s.name, s.werr, s.stdout.String(), s.stderr.String())
			default:
			}
			t.Fatalf("%s: %v\n%s", s.name, err, s.stderr.String())
		}
	}
}

// children returns the pids of a process's children.
func children(t *testing.T, pid int) []int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		t.Fatalf("children of %d: %v", pid, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("children of %d: %q: %v", pid, f, err)
		}
		pids = append(pids, p)
	}
	return pids
}

// comm is a process's name as the kernel has it.
func comm(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatalf("comm of %d: %v", pid, err)
	}
	return strings.TrimSpace(string(b))
}

// client runs a client program inside ns, bounded by timeout, and returns
// its exit code (a client may well fail: the servers here reset it).
func client(t *testing.T, ns *scenario.Namespace, timeout time.Duration, path string, args ...string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := ns.Command(ctx, path, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %v: not done within %v: %s", path, args, timeout, stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s: %v", path, err)
	}
	return cmd.ProcessState.ExitCode()
}

// measured is what one case did: its events and the kernel's deltas.
type measured struct {
	events []collector.Event
	mib    scenario.Counters
	bpf    collector.Counters
}

// byKind counts events by kind.
func (m measured) byKind() map[collector.Kind]int {
	n := map[collector.Kind]int{}
	for _, ev := range m.events {
		n[ev.Kind]++
	}
	return n
}

// measure runs fn between two snapshots, waits until the namespace holds no
// connection and the events have settled, and checks that the events, the
// programs' counters and the namespace's MIB counters agree exactly.
func measure(t *testing.T, ns *scenario.Namespace, tr *harness.Tracer, family string, fn func()) measured {
	t.Helper()
	mark := tr.Mark()
	before := harness.TakeSnapshot(t, ns, tr)
	fn()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ns.WaitConnectionsGone(ctx); err != nil {
		t.Fatal(err)
	}
	events := tr.Since(mark)
	after := harness.TakeSnapshot(t, ns, tr)
	mib, d := after.Deltas(before)
	for _, ev := range events {
		if f := ev.Family(); f != family {
			t.Errorf("%s: family %s, want %s", ev.Kind, f, family)
		}
		if ev.Netns != ns.Inode {
			t.Errorf("%s: netns %d, want %d", ev.Kind, ev.Netns, ns.Inode)
		}
	}
	harness.CheckKernelAgreement(t, tr.C.Reasons(), false, events, mib, d)
	m := measured{events: events, mib: mib, bpf: d}
	if testing.Verbose() && os.Getenv("REALAPPS_EVENTS") == "1" {
		for _, ev := range events {
			t.Logf("%+v", ev)
		}
	}
	t.Logf("events %v; nstat TcpExtTCPAbortOnClose %d, TcpExtTCPAbortOnData %d, TcpOutRsts %d, TcpEstabResets %d; resets sent by reason %s",
		kindsString(m.byKind()), mib["TcpExtTCPAbortOnClose"], mib["TcpExtTCPAbortOnData"], mib["TcpOutRsts"], mib["TcpEstabResets"],
		harness.NonZeroReasons(tr.C.Reasons(), d.ResetReasons[:]))
	return m
}

func kindsString(n map[collector.Kind]int) string {
	var parts []string
	for _, k := range collector.Kinds() {
		if n[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", k, n[k]))
		}
	}
	return strings.Join(parts, " ")
}

// closedBy asserts that every event of the kinds that name the closing
// process (the closes and what follows them on the same socket) names, on
// the server's sockets (local port port), one of pids with the name server,
// and on the other sockets the client program.
func closedBy(t *testing.T, events []collector.Event, port uint16, server string, pids []int, client string) {
	t.Helper()
	for _, ev := range events {
		switch ev.Kind {
		case collector.KindUnreadClose, collector.KindUndrainedClose, collector.KindAbortClose, collector.KindDataAfterClose:
		default:
			continue
		}
		if ev.LPort != port {
			if ev.Comm != client {
				t.Errorf("%s on the client's :%d attributed to pid %d %q, want %q", ev.Kind, ev.LPort, ev.PID, ev.Comm, client)
			}
			continue
		}
		if !slices.Contains(pids, int(ev.PID)) || ev.Comm != server {
			t.Errorf("%s on :%d attributed to pid %d %q, want %q with pid in %v", ev.Kind, ev.LPort, ev.PID, ev.Comm, server, pids)
		}
	}
}

// setup is the common start of every case: the host check, the programs,
// a namespace and a tracer on it.
func setup(t *testing.T, programs ...[2]string) (*scenario.Namespace, *harness.Tracer, map[string]string) {
	t.Helper()
	harness.RequireHost(t)
	paths := map[string]string{}
	for _, p := range programs {
		paths[filepath.Base(p[0])] = testenv.RequireTool(t, p[0], p[1])
	}
	ns := harness.NewNamespace(t)
	tr := harness.StartTracer(t, collector.Options{Netns: ns.Inode})
	return ns, tr, paths
}

// writeFile writes a config file into dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

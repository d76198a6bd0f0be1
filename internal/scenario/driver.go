package scenario

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/syncbuf"
)

// Proc is a helper process that took part.
type Proc struct {
	PID  int
	Comm string
}

// helper is the driver's handle on one running helper process.
type helper struct {
	role   string
	proc   Proc
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	quit   chan struct{}
	done   chan struct{} // closed once the process has been waited for
	werr   error         // exit status, valid after done
	stderr syncbuf.Buffer
}

// driver runs one scenario: it starts the helpers and sends them commands.
// The first error sticks; later commands are skipped.
type driver struct {
	ns      *Namespace
	family  string
	af      int
	name    string
	ctx     context.Context
	helpers []*helper
	err     error
	// closerComm, if set, is the name the closer gives itself right after
	// it starts (prctl(PR_SET_NAME)), before it opens any socket.
	closerComm string
	// pause, if set, runs where a scenario marks that what came before is
	// older than the tracer (see RunPaused).
	pause func() error
}

func newDriver(ctx context.Context, ns *Namespace, name, family string) (*driver, error) {
	if ns == nil || ns.dir == "" {
		return nil, errors.New("no namespace")
	}
	af, err := familyAF(family)
	if err != nil {
		return nil, err
	}
	return &driver{ns: ns, family: family, af: af, name: name, ctx: ctx}, nil
}

// fail records the first error.
func (d *driver) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// start runs a helper as tct-<role> inside the namespace and waits until it
// is ready.
func (d *driver) start(role string) *helper {
	if d.err != nil {
		return &helper{role: role}
	}
	h, err := d.startHelper(role)
	if err != nil {
		d.fail(fmt.Errorf("start %s: %w", role, err))
	} else if role == roleCloser && d.closerComm != "" {
		d.rename(h, d.closerComm)
	}
	return h
}

// rename makes h name itself comm and records the name the kernel kept.
func (d *driver) rename(h *helper, comm string) {
	d.do(h, "comm %s", hex.EncodeToString([]byte(comm)))
	if d.err != nil {
		return
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.proc.PID))
	if err != nil {
		d.fail(fmt.Errorf("read comm: %w", err))
		return
	}
	got := strings.TrimSuffix(string(b), "\n") // the kernel writes the name raw, then a newline
	if want := comm[:min(len(comm), 15)]; got != want {
		d.fail(fmt.Errorf("%s named itself %q, the kernel has %q", h.role, want, got))
		return
	}
	h.proc.Comm = got
}

func (d *driver) startHelper(role string) (*helper, error) {
	h := &helper{role: role, lines: make(chan string, 1), quit: make(chan struct{}), done: make(chan struct{})}
	h.cmd = exec.Command("ip", "netns", "exec", d.ns.Name, filepath.Join(d.ns.dir, "tct-"+role))
	h.cmd.Env = append(os.Environ(), envRole+"="+role, envFamily+"="+d.family, envScenario+"="+d.name)
	h.cmd.Stderr = &h.stderr
	// A helper must not outlive the driver (it would hold the namespace).
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		return h, err
	}
	stdout, err := h.cmd.StdoutPipe()
	if err != nil {
		return h, err
	}
	if err := h.startLocked(); err != nil {
		return h, err
	}
	d.helpers = append(d.helpers, h)
	go func() {
		sc := bufio.NewScanner(stdout)
	read:
		for sc.Scan() {
			select {
			case h.lines <- sc.Text():
			case <-h.quit:
				break read
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		close(h.lines)
		h.werr = h.cmd.Wait()
		close(h.done)
	}()
	h.proc.PID = h.cmd.Process.Pid
	if role == roleCloser && d.ns.CloserCgroup != "" {
		procs := filepath.Join(d.ns.CloserCgroup, "cgroup.procs")
		if err := os.WriteFile(procs, []byte(strconv.Itoa(h.proc.PID)), 0o644); err != nil {
			return h, fmt.Errorf("move into cgroup %s: %w", d.ns.CloserCgroup, err)
		}
	}
	f, err := h.reply(d.ctx, "start")
	if err != nil {
		return h, err
	}
	if len(f) != 2 || f[0] != "ready" || f[1] != strconv.Itoa(h.proc.PID) {
		return h, fmt.Errorf("unexpected greeting %q (ip netns exec did not exec pid %d?)", strings.Join(f, " "), h.proc.PID)
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.proc.PID))
	if err != nil {
		return h, fmt.Errorf("read comm: %w", err)
	}
	h.proc.Comm = strings.TrimSpace(string(comm))
	if want := "tct-" + role; h.proc.Comm != want {
		return h, fmt.Errorf("comm %q, want %q", h.proc.Comm, want)
	}
	return h, nil
}

// startLocked starts the helper from an OS thread kept until the helper has
// been reaped: Pdeathsig fires when the thread that forked the child exits,
// and Go may end an arbitrary thread.
func (h *helper) startLocked() error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := h.cmd.Start()
		errc <- err
		if err == nil {
			<-h.done
		}
	}()
	return <-errc
}

// reply waits for the helper's next line and splits it into fields.
func (h *helper) reply(ctx context.Context, what string) ([]string, error) {
	select {
	case line, ok := <-h.lines:
		if !ok {
			<-h.done
			return nil, fmt.Errorf("%s %q: helper exited (%v): %s", h.role, what, h.werr, strings.TrimSpace(h.stderr.String()))
		}
		return strings.Fields(line), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s %q: %w", h.role, what, ctx.Err())
	}
}

// do sends one command to h and returns the fields of its "ok" answer.
// checkpoint runs the pause, if any: the sockets made so far are older
// than what the pause starts.
func (d *driver) checkpoint() {
	if d.err != nil || d.pause == nil {
		return
	}
	if err := d.pause(); err != nil {
		d.fail(fmt.Errorf("pause: %w", err))
	}
}

func (d *driver) do(h *helper, format string, args ...any) []string {
	if d.err != nil {
		return nil
	}
	line := fmt.Sprintf(format, args...)
	if _, err := io.WriteString(h.stdin, line+"\n"); err != nil {
		d.fail(fmt.Errorf("%s %q: %w", h.role, line, err))
		return nil
	}
	f, err := h.reply(d.ctx, line)
	if err != nil {
		d.fail(err)
		return nil
	}
	if len(f) == 0 || f[0] != "ok" {
		d.fail(fmt.Errorf("%s %q: %s", h.role, line, strings.Join(f, " ")))
		return nil
	}
	return f[1:]
}

// num runs a command whose answer starts with a number.
func (d *driver) num(h *helper, format string, args ...any) int {
	f := d.do(h, format, args...)
	if d.err != nil {
		return 0
	}
	if len(f) == 0 {
		d.fail(fmt.Errorf("%s %q: empty answer", h.role, fmt.Sprintf(format, args...)))
		return 0
	}
	v, err := strconv.Atoi(f[0])
	if err != nil {
		d.fail(fmt.Errorf("%s %q: %w", h.role, fmt.Sprintf(format, args...), err))
	}
	return v
}

// port is num for a port number.
func (d *driver) port(h *helper, format string, args ...any) uint16 {
	v := d.num(h, format, args...)
	if d.err == nil && (v <= 0 || v > 65535) {
		d.fail(fmt.Errorf("%s %q: bad port %d", h.role, fmt.Sprintf(format, args...), v))
	}
	return uint16(v)
}

// twoWords makes h run a command that answers two words, and returns them; nil
// when the run has failed.
func (d *driver) twoWords(h *helper, format string, args ...any) []string {
	f := d.do(h, format, args...)
	if d.err != nil {
		return nil
	}
	if len(f) != 2 {
		cmd, _, _ := strings.Cut(format, " ")
		d.fail(fmt.Errorf("%s %s: bad answer %q", h.role, cmd, f))
		return nil
	}
	return f
}

// connect makes h connect socket S to port and checks the outcome (an errno
// name, or OK). It returns the socket's local port.
func (d *driver) connect(h *helper, port uint16, want string) uint16 {
	f := d.twoWords(h, "connect S %d", port)
	if f == nil {
		return 0
	}
	if f[1] != want {
		d.fail(fmt.Errorf("%s connect to port %d: %s, want %s", h.role, port, f[1], want))
		return 0
	}
	p, err := strconv.Atoi(f[0])
	if err != nil || p <= 0 || p > 65535 {
		d.fail(fmt.Errorf("%s connect: local port %q", h.role, f[0]))
		return 0
	}
	return uint16(p)
}

// link connects client's socket S to server's listener L (its receive
// buffer rcvbuf bytes, 0 for the default), which accepts it as its S. It
// returns the listener's port and the client's.
func (d *driver) link(server, client *helper, rcvbuf int) (lport, cport uint16) {
	lport = d.port(server, "listen L %d", rcvbuf)
	cport = d.connect(client, lport, "OK")
	d.accept(server, cport)
	return lport, cport
}

// accept makes h accept socket S on listener L and checks the remote port.
func (d *driver) accept(h *helper, remote uint16) uint16 {
	f := d.do(h, "accept L S")
	if d.err != nil {
		return 0
	}
	if len(f) != 2 || f[1] != strconv.Itoa(int(remote)) {
		d.fail(fmt.Errorf("%s accept: got %q, want remote port %d", h.role, f, remote))
		return 0
	}
	p, _ := strconv.Atoi(f[0])
	return uint16(p)
}

// readAll makes h read socket S to its end and checks how it ended: the byte
// count, and EOF or an errno name. A negative bytes accepts any count.
func (d *driver) readAll(h *helper, bytes int, end ...string) int {
	return d.readAllOf(h, "S", bytes, end...)
}

// readAllOf is readAll on h's socket name.
func (d *driver) readAllOf(h *helper, name string, bytes int, end ...string) int {
	f := d.twoWords(h, "readall %s", name)
	if f == nil {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	if bytes >= 0 && n != bytes {
		d.fail(fmt.Errorf("%s read %d bytes, want %d", h.role, n, bytes))
	}
	for _, e := range end {
		if f[1] == e {
			return n
		}
	}
	d.fail(fmt.Errorf("%s read ended with %s, want %s", h.role, f[1], strings.Join(end, " or ")))
	return n
}

// waitFinWait2 waits until the closer's orphaned socket has its FIN acked.
// It returns whether the socket is then a TIME_WAIT mini-socket.
func (d *driver) waitFinWait2(closerPort, peerPort uint16) bool {
	if d.err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(d.ctx, scaled(helperPoll))
	defer cancel()
	s, err := d.ns.waitOrphanFinWait2(ctx, d.af, closerPort, peerPort)
	if err != nil {
		d.fail(fmt.Errorf("closer socket: %w", err))
		return false
	}
	return s.miniSocket()
}

// finish ends the helpers (all their sockets close with them), waits for
// them, and waits until no full socket is left in the namespace.
func (d *driver) finish() {
	for _, h := range d.helpers {
		if d.err != nil {
			return
		}
		if _, err := io.WriteString(h.stdin, "exit\n"); err != nil {
			d.fail(fmt.Errorf("%s exit: %w", h.role, err))
			return
		}
		h.stdin.Close()
		select {
		case <-h.done:
		case <-d.ctx.Done():
			d.fail(fmt.Errorf("%s exit: %w", h.role, d.ctx.Err()))
			return
		}
		if h.werr != nil {
			d.fail(fmt.Errorf("%s: %w: %s", h.role, h.werr, strings.TrimSpace(h.stderr.String())))
			return
		}
	}
	if d.err == nil {
		if err := d.ns.waitSettled(d.ctx); err != nil {
			d.fail(err)
		}
	}
}

// cleanup kills (by pid) and reaps every helper still running.
func (d *driver) cleanup() {
	for _, h := range d.helpers {
		select {
		case <-h.done:
			continue
		default:
		}
		close(h.quit)
		h.stdin.Close()
		if err := h.cmd.Process.Signal(unix.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
			d.fail(fmt.Errorf("kill %s pid %d: %w", h.role, h.proc.PID, err))
		}
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			d.fail(fmt.Errorf("%s pid %d did not exit after SIGKILL", h.role, h.proc.PID))
		}
	}
}

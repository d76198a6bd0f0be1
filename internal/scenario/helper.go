package scenario

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables that make this executable a helper.
const (
	envRole     = "TCPCLOSE_SCENARIO_ROLE"
	envFamily   = "TCPCLOSE_SCENARIO_FAMILY"
	envScenario = "TCPCLOSE_SCENARIO_NAME"
)

// Helper roles; the process is started as tct-<role>.
const (
	roleCloser = "closer"
	rolePeer   = "peer"
)

// helperPoll bounds every polling command inside a helper.
const helperPoll = 5 * time.Second

func init() {
	// A helper does its socket work on the main thread (tid == pid): an init
	// function that locks the OS thread makes main run on the startup thread.
	if os.Getenv(envRole) != "" {
		runtime.LockOSThread()
	}
}

// MaybeRunHelper must be called first thing by main() or TestMain: if this
// process was started as a scenario helper it runs the helper role and exits
// the process; otherwise it returns immediately.
func MaybeRunHelper() {
	role := os.Getenv(envRole)
	if role == "" {
		return
	}
	runtime.LockOSThread()
	if role != roleCloser && role != rolePeer {
		fmt.Fprintf(os.Stderr, "scenario helper: unknown role %q\n", role)
		os.Exit(2)
	}
	af, err := familyAF(os.Getenv(envFamily))
	if err != nil {
		fmt.Fprintf(os.Stderr, "scenario helper: %v\n", err)
		os.Exit(2)
	}
	h := &helperProc{af: af, socks: map[string]int{}}
	if err := h.serve(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "scenario helper %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func familyAF(family string) (int, error) {
	switch family {
	case "ipv4":
		return unix.AF_INET, nil
	case "ipv6":
		return unix.AF_INET6, nil
	}
	return 0, fmt.Errorf("unknown family %q (want ipv4 or ipv6)", family)
}

// helperProc is the helper side: it reads one command a line from its stdin,
// does exactly the socket calls the command names, and answers one line,
// "ok ..." or "err ...". Sockets are named by the driver ("L", "S").
type helperProc struct {
	af    int
	socks map[string]int
}

func (h *helperProc) serve(in io.Reader, out io.Writer) error {
	if _, err := fmt.Fprintf(out, "ready %d\n", os.Getpid()); err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "exit" {
			break
		}
		reply, err := h.do(f)
		line := "ok " + reply
		if err != nil {
			line = "err " + strings.ReplaceAll(err.Error(), "\n", " ")
		}
		if _, err := fmt.Fprintln(out, line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var errs []error
	for name, fd := range h.socks {
		if err := unix.Close(fd); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (h *helperProc) sockaddr(port int) unix.Sockaddr {
	if h.af == unix.AF_INET6 {
		return &unix.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}}
	}
	return &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
}

func localPort(fd int) (int, error) {
	sa, err := unix.Getsockname(fd)
	return portOf(sa, err, "getsockname")
}

func remotePort(fd int) (int, error) {
	sa, err := unix.Getpeername(fd)
	return portOf(sa, err, "getpeername")
}

// portOf returns the port of an address from call (getsockname or getpeername).
func portOf(sa unix.Sockaddr, err error, call string) (int, error) {
	if err != nil {
		return 0, fmt.Errorf("%s: %w", call, err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return a.Port, nil
	case *unix.SockaddrInet6:
		return a.Port, nil
	}
	return 0, fmt.Errorf("%s: unexpected address %T", call, sa)
}

func errnoName(err error) string {
	if err == nil {
		return "OK"
	}
	var e unix.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
		return "errno" + strconv.Itoa(int(e))
	}
	return "unknown"
}

// args checks the argument count and parses the numeric ones (from index 2).
func (h *helperProc) args(f []string, n int) (fd int, nums []int, err error) {
	if len(f) != n+1 {
		return 0, nil, fmt.Errorf("%s: want %d arguments, got %d", f[0], n, len(f)-1)
	}
	for _, s := range f[2:] {
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %w", f[0], err)
		}
		nums = append(nums, v)
	}
	fd = -1
	if n > 0 {
		if v, ok := h.socks[f[1]]; ok {
			fd = v
		}
	}
	return fd, nums, nil
}

func (h *helperProc) sock(f []string, n int) (int, []int, error) {
	fd, nums, err := h.args(f, n)
	if err != nil {
		return 0, nil, err
	}
	if fd < 0 {
		return 0, nil, fmt.Errorf("%s: no socket %q", f[0], f[1])
	}
	return fd, nums, nil
}

// poll calls cond every millisecond until it is true, for at most helperPoll.
func poll(what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(scaled(helperPoll))
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: timed out", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func writeFull(fd int, n int) error {
	buf := make([]byte, n)
	for i := range buf {
		buf[i] = 'a' + byte(i%26)
	}
	for len(buf) > 0 {
		w, err := unix.Write(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		buf = buf[w:]
	}
	return nil
}

// readToEnd reads fd until EOF or an error: the bytes read and "EOF" or
// the errno's name.
func readToEnd(fd int) (int, string, error) {
	buf := make([]byte, 64<<10)
	total := 0
	for range 100000 {
		r, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, errnoName(err), nil
		}
		if r == 0 {
			return total, "EOF", nil
		}
		total += r
	}
	return 0, "", fmt.Errorf("read: no end after %d bytes", total)
}

// Repair queues (include/uapi/linux/tcp.h).
const (
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// repairConnect makes fd an ESTABLISHED socket to sa without a handshake
// (TCP_REPAIR, CAP_NET_ADMIN), as if the other end had forgotten the
// connection. Leaving repair mode sends a window probe, an ACK the other
// end's listener answers with a reset.
func repairConnect(fd int, sa unix.Sockaddr) error {
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, 1); err != nil {
		return fmt.Errorf("setsockopt TCP_REPAIR: %w", err)
	}
	for _, q := range []struct{ queue, seq int }{{tcpSendQueue, 1000}, {tcpRecvQueue, 5000}} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q.queue); err != nil {
			return fmt.Errorf("setsockopt TCP_REPAIR_QUEUE: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ, q.seq); err != nil {
			return fmt.Errorf("setsockopt TCP_QUEUE_SEQ: %w", err)
		}
	}
	if err := unix.Connect(fd, sa); err != nil {
		return fmt.Errorf("connect in repair mode: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
		return fmt.Errorf("setsockopt TCP_REPAIR off: %w", err)
	}
	return nil
}

// newSocket opens a TCP socket of the helper's family and keeps it under
// name, which must be new; cmd names the command in the error.
func (h *helperProc) newSocket(cmd, name string) (int, error) {
	if _, dup := h.socks[name]; dup {
		return -1, fmt.Errorf("%s: socket %q exists", cmd, name)
	}
	fd, err := unix.Socket(h.af, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	h.socks[name] = fd
	return fd, nil
}

// closeWithoutDraining closes fd: the call site the stacks of call_site
// must name (CallSite).
//
//go:noinline
func closeWithoutDraining(fd int) error {
	return unix.Close(fd)
}

// CallSite returns the function of call_site's close, as a symbolizer
// names it, and the line of its declaration in its file: the close is on
// the lines right after.
func CallSite() (fn, file string, declLine int) {
	f := runtime.FuncForPC(reflect.ValueOf(closeWithoutDraining).Pointer())
	file, declLine = f.FileLine(f.Entry())
	return f.Name(), file, declLine
}

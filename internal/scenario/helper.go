package scenario

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

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

func (h *helperProc) do(f []string) (string, error) {
	switch f[0] {
	case "listen": // listen NAME RCVBUF: socket, [SO_RCVBUF], bind loopback:0, listen -> port
		_, nums, err := h.args(f, 2)
		if err != nil {
			return "", err
		}
		fd, err := h.newSocket(f[0], f[1])
		if err != nil {
			return "", err
		}
		if nums[0] > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, nums[0]); err != nil {
				return "", fmt.Errorf("setsockopt SO_RCVBUF: %w", err)
			}
		}
		if err := unix.Bind(fd, h.sockaddr(0)); err != nil {
			return "", fmt.Errorf("bind: %w", err)
		}
		if err := unix.Listen(fd, 128); err != nil {
			return "", fmt.Errorf("listen: %w", err)
		}
		p, err := localPort(fd)
		return strconv.Itoa(p), err

	case "accept": // accept LISTENER NAME -> local port, remote port
		if len(f) != 3 {
			return "", errors.New("accept: want 2 arguments")
		}
		lfd, ok := h.socks[f[1]]
		if !ok {
			return "", fmt.Errorf("accept: no socket %q", f[1])
		}
		if _, dup := h.socks[f[2]]; dup {
			return "", fmt.Errorf("accept: socket %q exists", f[2])
		}
		var fd int
		var err error
		for {
			fd, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return "", fmt.Errorf("accept: %w", err)
		}
		h.socks[f[2]] = fd
		lp, err := localPort(fd)
		if err != nil {
			return "", err
		}
		rp, err := remotePort(fd)
		return fmt.Sprintf("%d %d", lp, rp), err

	case "connect": // connect NAME PORT: socket, connect -> local port, errno name
		_, nums, err := h.args(f, 2)
		if err != nil {
			return "", err
		}
		fd, err := h.newSocket(f[0], f[1])
		if err != nil {
			return "", err
		}
		cerr := unix.Connect(fd, h.sockaddr(nums[0]))
		lp, err := localPort(fd)
		return fmt.Sprintf("%d %s", lp, errnoName(cerr)), err

	case "refused": // refused PORT N: N connections to PORT, each refused (ECONNREFUSED) and closed
		if len(f) != 3 {
			return "", errors.New("refused: want a port and a count")
		}
		var nums [2]int
		for i, a := range f[1:] {
			v, err := strconv.Atoi(a)
			if err != nil {
				return "", fmt.Errorf("refused: %w", err)
			}
			nums[i] = v
		}
		if nums[1] < 1 || nums[1] > MaxStorm {
			return "", fmt.Errorf("refused: count %d out of range 1..%d", nums[1], MaxStorm)
		}
		for i := 0; i < nums[1]; i++ {
			fd, err := unix.Socket(h.af, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return "", fmt.Errorf("socket: %w", err)
			}
			cerr := unix.Connect(fd, h.sockaddr(nums[0]))
			if err := unix.Close(fd); err != nil {
				return "", fmt.Errorf("close: %w", err)
			}
			if cerr != unix.ECONNREFUSED {
				return "", fmt.Errorf("connection %d to port %d: %s, want ECONNREFUSED", i, nums[0], errnoName(cerr))
			}
		}
		return "", nil

	case "freeport": // freeport: a port nothing listens on (bound, then closed)
		if len(f) != 1 {
			return "", errors.New("freeport: want no arguments")
		}
		fd, err := unix.Socket(h.af, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "", fmt.Errorf("socket: %w", err)
		}
		err = unix.Bind(fd, h.sockaddr(0))
		p, perr := localPort(fd)
		if cerr := unix.Close(fd); cerr != nil && err == nil {
			err = fmt.Errorf("close: %w", cerr)
		}
		if err != nil {
			return "", err
		}
		return strconv.Itoa(p), perr

	case "sndbuf": // sndbuf NAME BYTES: setsockopt SO_SNDBUF
		fd, nums, err := h.sock(f, 2)
		if err != nil {
			return "", err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, nums[0]); err != nil {
			return "", fmt.Errorf("setsockopt SO_SNDBUF: %w", err)
		}
		return "", nil

	case "write": // write NAME BYTES: blocking write of exactly BYTES
		fd, nums, err := h.sock(f, 2)
		if err != nil {
			return "", err
		}
		return strconv.Itoa(nums[0]), writeFull(fd, nums[0])

	case "fill": // fill NAME: non-blocking writes until EAGAIN -> bytes written
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			return "", fmt.Errorf("set non-blocking: %w", err)
		}
		buf := make([]byte, 1024)
		total := 0
		for range 4096 {
			w, err := unix.Write(fd, buf)
			if err == unix.EAGAIN {
				return strconv.Itoa(total), nil
			}
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("write: %w", err)
			}
			total += w
		}
		return "", fmt.Errorf("fill: no EAGAIN after %d bytes", total)

	case "read": // read NAME BYTES: blocking reads of exactly BYTES
		fd, nums, err := h.sock(f, 2)
		if err != nil {
			return "", err
		}
		buf := make([]byte, nums[0])
		got := 0
		for got < len(buf) {
			r, err := unix.Read(fd, buf[got:])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("read after %d bytes: %w", got, err)
			}
			if r == 0 {
				return "", fmt.Errorf("read: EOF after %d bytes", got)
			}
			got += r
		}
		return strconv.Itoa(got), nil

	case "readall": // readall NAME: read until EOF or error -> bytes, EOF or errno name
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		total, end, err := readToEnd(fd)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d %s", total, end), nil

	case "waitinq": // waitinq NAME BYTES: poll SIOCINQ until it is BYTES
		fd, nums, err := h.sock(f, 2)
		if err != nil {
			return "", err
		}
		return "", poll(fmt.Sprintf("wait for %d bytes queued", nums[0]), func() (bool, error) {
			v, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
			if err != nil {
				return false, fmt.Errorf("ioctl SIOCINQ: %w", err)
			}
			if v > nums[0] {
				return false, fmt.Errorf("%d bytes queued", v)
			}
			return v == nums[0], nil
		})

	case "waitstalled": // waitstalled NAME: poll TCP_INFO until all sent is acked and the peer's window is zero
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		return "", poll("wait for a zero window, all sent acked", func() (bool, error) {
			ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				return false, fmt.Errorf("getsockopt TCP_INFO: %w", err)
			}
			return ti.Unacked == 0 && ti.Snd_wnd == 0, nil
		})

	case "waitclosed": // waitclosed NAME: poll TCP_INFO until the state is CLOSE
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		return "", poll("wait for CLOSE", func() (bool, error) {
			ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
			if err != nil {
				return false, fmt.Errorf("getsockopt TCP_INFO: %w", err)
			}
			return ti.State == tcpClose, nil
		})

	case "outq", "inq": // outq|inq NAME: ioctl SIOCOUTQ|SIOCINQ -> bytes
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		req := unix.SIOCOUTQ
		if f[0] == "inq" {
			req = unix.SIOCINQ
		}
		v, err := unix.IoctlGetInt(fd, uint(req))
		if err != nil {
			return "", fmt.Errorf("ioctl %s: %w", f[0], err)
		}
		return strconv.Itoa(v), nil

	case "linger": // linger NAME SECONDS: SO_LINGER {on, SECONDS}
		fd, nums, err := h.sock(f, 2)
		if err != nil {
			return "", err
		}
		if nums[0] < 0 || nums[0] > 5 {
			return "", fmt.Errorf("linger: bad time %d", nums[0])
		}
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(nums[0])}); err != nil {
			return "", fmt.Errorf("setsockopt SO_LINGER: %w", err)
		}
		return "", nil

	case "quickack": // quickack NAME: TCP_QUICKACK 1 (sends a pending ACK now)
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1); err != nil {
			return "", fmt.Errorf("setsockopt TCP_QUICKACK: %w", err)
		}
		return "", nil

	case "shutwr": // shutwr NAME: shutdown(SHUT_WR)
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
			return "", fmt.Errorf("shutdown: %w", err)
		}
		return "", nil

	case "shutrd": // shutrd NAME: shutdown(SHUT_RD)
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		if err := unix.Shutdown(fd, unix.SHUT_RD); err != nil {
			return "", fmt.Errorf("shutdown: %w", err)
		}
		return "", nil

	case "drainclose": // drainclose NAME: read what is queued (after shutrd), close at once -> bytes read
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		// After shutdown(SHUT_RD) read returns 0 once the queue is empty
		// and the kernel sends no window update: the peer learns of the
		// space only from the FIN that close() sends next.
		total, end, err := readToEnd(fd)
		if err != nil {
			return "", err
		}
		if end != "EOF" {
			return "", fmt.Errorf("drainclose: read ended with %s after %d bytes", end, total)
		}
		delete(h.socks, f[1])
		if err := unix.Close(fd); err != nil {
			return "", fmt.Errorf("close: %w", err)
		}
		return strconv.Itoa(total), nil

	case "shutclose": // shutclose NAME: shutdown(SHUT_WR) and close() at once (as Java's Socket.close())
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
			return "", fmt.Errorf("shutdown: %w", err)
		}
		delete(h.socks, f[1])
		if err := unix.Close(fd); err != nil {
			return "", fmt.Errorf("close: %w", err)
		}
		return "", nil

	case "sent": // sent NAME: TCP_INFO bytes_sent -> bytes
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return "", fmt.Errorf("getsockopt TCP_INFO: %w", err)
		}
		return strconv.FormatUint(ti.Bytes_sent, 10), nil

	case "halfopen": // halfopen NAME PORT: a socket established by TCP_REPAIR (no handshake) to PORT -> local port
		_, nums, err := h.args(f, 2)
		if err != nil {
			return "", err
		}
		fd, err := h.newSocket(f[0], f[1])
		if err != nil {
			return "", err
		}
		if err := repairConnect(fd, h.sockaddr(nums[0])); err != nil {
			return "", err
		}
		lp, err := localPort(fd)
		return strconv.Itoa(lp), err

	case "close": // close NAME
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		delete(h.socks, f[1])
		if err := unix.Close(fd); err != nil {
			return "", fmt.Errorf("close: %w", err)
		}
		return "", nil

	case "closewithoutdraining": // closewithoutdraining NAME: close from a function of that name (a call site to find)
		fd, _, err := h.sock(f, 1)
		if err != nil {
			return "", err
		}
		delete(h.socks, f[1])
		if err := closeWithoutDraining(fd); err != nil {
			return "", fmt.Errorf("close: %w", err)
		}
		return "", nil

	case "fd": // fd NAME -> the socket's descriptor number in this process
		fd, _, err := h.sock(f, 1)
		return strconv.Itoa(fd), err

	case "grab": // grab NAME PID FD: a copy of another process's socket (pidfd_getfd)
		if len(f) != 4 {
			return "", errors.New("grab: want 3 arguments")
		}
		if _, dup := h.socks[f[1]]; dup {
			return "", fmt.Errorf("grab: socket %q exists", f[1])
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil {
			return "", fmt.Errorf("grab: %w", err)
		}
		target, err := strconv.Atoi(f[3])
		if err != nil {
			return "", fmt.Errorf("grab: %w", err)
		}
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return "", fmt.Errorf("pidfd_open %d: %w", pid, err)
		}
		fd, err := unix.PidfdGetfd(pidfd, target, 0)
		unix.Close(pidfd)
		if err != nil {
			return "", fmt.Errorf("pidfd_getfd %d %d: %w", pid, target, err)
		}
		h.socks[f[1]] = fd
		return "", nil

	case "sleep": // sleep MILLISECONDS (at most 1000)
		if len(f) != 2 {
			return "", errors.New("sleep: want 1 argument")
		}
		ms, err := strconv.Atoi(f[1])
		if err != nil || ms < 0 || ms > 1000 {
			return "", fmt.Errorf("sleep: bad duration %q", f[1])
		}
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return "", nil

	case "thread": // thread NAME CMD...: CMD on a new OS thread named NAME, which then ends
		if len(f) < 3 {
			return "", errors.New("thread: want a name and a command")
		}
		type answer struct {
			reply string
			err   error
		}
		done := make(chan answer)
		go func() {
			// Locked and never unlocked: the thread ends with the goroutine.
			runtime.LockOSThread()
			buf := append([]byte(f[1]), 0)
			if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&buf[0])), 0, 0, 0); err != nil {
				done <- answer{err: fmt.Errorf("prctl PR_SET_NAME: %w", err)}
				return
			}
			reply, err := h.do(f[2:])
			done <- answer{reply, err}
		}()
		a := <-done
		return a.reply, a.err

	case "comm": // comm HEX: prctl(PR_SET_NAME) to the bytes HEX encodes (any but NUL; the kernel keeps 15)
		if len(f) != 2 {
			return "", errors.New("comm: want 1 argument")
		}
		name, err := hex.DecodeString(f[1])
		if err != nil || len(name) == 0 || bytes.IndexByte(name, 0) >= 0 {
			return "", fmt.Errorf("comm: bad name %q", f[1])
		}
		// On the main thread (see init), so the process's name changes.
		buf := append(name, 0)
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&buf[0])), 0, 0, 0); err != nil {
			return "", fmt.Errorf("prctl PR_SET_NAME: %w", err)
		}
		return "", nil
	}
	return "", fmt.Errorf("unknown command %q", f[0])
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

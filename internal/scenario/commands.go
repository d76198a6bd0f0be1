package scenario

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// helperCommand is one of the helper's commands: it runs f (f[0] is the
// command's name, the rest its arguments) and returns the reply.
type helperCommand func(h *helperProc, f []string) (string, error)

// commands are the helper's commands by name; the comment on each tells its
// arguments and its reply (after ->). It is filled by init, as "thread"
// runs a command itself.
var commands map[string]helperCommand

func init() {
	commands = map[string]helperCommand{
		"listen":               cmdListen,                              // listen NAME RCVBUF: socket, [SO_RCVBUF], bind loopback:0, listen -> port
		"accept":               cmdAccept,                              // accept LISTENER NAME -> local port, remote port
		"connect":              cmdConnect,                             // connect NAME PORT: socket, connect -> local port, errno name
		"refused":              cmdRefused,                             // refused PORT N: N connections to PORT, each refused (ECONNREFUSED) and closed
		"freeport":             cmdFreePort,                            // freeport: a port nothing listens on (bound, then closed)
		"halfopen":             cmdHalfOpen,                            // halfopen NAME PORT: a socket established by TCP_REPAIR (no handshake) to PORT -> local port
		"grab":                 cmdGrab,                                // grab NAME PID FD: a copy of another process's socket (pidfd_getfd)
		"sleep":                cmdSleep,                               // sleep MILLISECONDS (at most 1000)
		"thread":               cmdThread,                              // thread NAME CMD...: CMD on a new OS thread named NAME, which then ends
		"comm":                 cmdComm,                                // comm HEX: prctl(PR_SET_NAME) to the bytes HEX encodes (any but NUL; the kernel keeps 15)
		"sndbuf":               onSocket(1, cmdSndbuf),                 // sndbuf NAME BYTES: setsockopt SO_SNDBUF
		"write":                onSocket(1, cmdWrite),                  // write NAME BYTES: blocking write of exactly BYTES
		"fill":                 onSocket(0, cmdFill),                   // fill NAME: non-blocking writes until EAGAIN -> bytes written
		"read":                 onSocket(1, cmdRead),                   // read NAME BYTES: blocking reads of exactly BYTES
		"readall":              onSocket(0, cmdReadAll),                // readall NAME: read until EOF or error -> bytes, EOF or errno name
		"waitinq":              onSocket(1, cmdWaitInq),                // waitinq NAME BYTES: poll SIOCINQ until it is BYTES
		"waitstalled":          onSocket(0, cmdWaitStalled),            // waitstalled NAME: poll TCP_INFO until all sent is acked and the peer's window is zero
		"waitclosed":           onSocket(0, cmdWaitClosed),             // waitclosed NAME: poll TCP_INFO until the state is CLOSE
		"outq":                 onSocket(0, cmdQueued(unix.SIOCOUTQ)),  // outq NAME: ioctl SIOCOUTQ -> bytes
		"inq":                  onSocket(0, cmdQueued(unix.SIOCINQ)),   // inq NAME: ioctl SIOCINQ -> bytes
		"linger":               onSocket(1, cmdLinger),                 // linger NAME SECONDS: SO_LINGER {on, SECONDS}
		"quickack":             onSocket(0, cmdQuickAck),               // quickack NAME: TCP_QUICKACK 1 (sends a pending ACK now)
		"shutwr":               onSocket(0, cmdShutdown(unix.SHUT_WR)), // shutwr NAME: shutdown(SHUT_WR)
		"shutrd":               onSocket(0, cmdShutdown(unix.SHUT_RD)), // shutrd NAME: shutdown(SHUT_RD)
		"drainclose":           onSocket(0, cmdDrainClose),             // drainclose NAME: read what is queued (after shutrd), close at once -> bytes read
		"shutclose":            onSocket(0, cmdShutClose),              // shutclose NAME: shutdown(SHUT_WR) and close() at once (as Java's Socket.close())
		"sent":                 onSocket(0, cmdSent),                   // sent NAME: TCP_INFO bytes_sent -> bytes
		"close":                onSocket(0, cmdCloseSocket),            // close NAME
		"closewithoutdraining": onSocket(0, cmdCloseNamed),             // closewithoutdraining NAME: close from a function of that name (a call site to find)
		"fd":                   onSocket(0, cmdDescriptor),             // fd NAME -> the socket's descriptor number in this process
	}
}

// do runs the command f.
func (h *helperProc) do(f []string) (string, error) {
	cmd, ok := commands[f[0]]
	if !ok {
		return "", fmt.Errorf("unknown command %q", f[0])
	}
	return cmd(h, f)
}

// socketArgs are the arguments of a command on a socket of the helper's.
type socketArgs struct {
	cmd, name string // the command and the socket's name
	fd        int
	nums      []int // the numbers after the name
}

// onSocket is a command on the socket named by its first argument, with n
// numbers after it.
func onSocket(n int, run func(h *helperProc, s socketArgs) (string, error)) helperCommand {
	return func(h *helperProc, f []string) (string, error) {
		fd, nums, err := h.sock(f, n+1)
		if err != nil {
			return "", err
		}
		return run(h, socketArgs{cmd: f[0], name: f[1], fd: fd, nums: nums})
	}
}

// newNamed makes the socket that command f names, f[1], and returns it
// with the number that follows the name.
func (h *helperProc) newNamed(f []string) (fd, num int, err error) {
	_, nums, err := h.args(f, 2)
	if err != nil {
		return 0, 0, err
	}
	fd, err = h.newSocket(f[0], f[1])
	return fd, nums[0], err
}

func cmdListen(h *helperProc, f []string) (string, error) {
	fd, num, err := h.newNamed(f)
	if err != nil {
		return "", err
	}
	if num > 0 {
		if err := setInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, num, "SO_RCVBUF"); err != nil {
			return "", err
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
}

func cmdAccept(h *helperProc, f []string) (string, error) {
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
}

func cmdConnect(h *helperProc, f []string) (string, error) {
	fd, num, err := h.newNamed(f)
	if err != nil {
		return "", err
	}
	cerr := unix.Connect(fd, h.sockaddr(num))
	lp, err := localPort(fd)
	return fmt.Sprintf("%d %s", lp, errnoName(cerr)), err
}

func cmdRefused(h *helperProc, f []string) (string, error) {
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
}

func cmdFreePort(h *helperProc, f []string) (string, error) {
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
}

func cmdHalfOpen(h *helperProc, f []string) (string, error) {
	fd, num, err := h.newNamed(f)
	if err != nil {
		return "", err
	}
	if err := repairConnect(fd, h.sockaddr(num)); err != nil {
		return "", err
	}
	lp, err := localPort(fd)
	return strconv.Itoa(lp), err
}

func cmdGrab(h *helperProc, f []string) (string, error) {
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
}

func cmdSleep(_ *helperProc, f []string) (string, error) {
	if len(f) != 2 {
		return "", errors.New("sleep: want 1 argument")
	}
	ms, err := strconv.Atoi(f[1])
	if err != nil || ms < 0 || ms > 1000 {
		return "", fmt.Errorf("sleep: bad duration %q", f[1])
	}
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return "", nil
}

func cmdThread(h *helperProc, f []string) (string, error) {
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
		if err := setName([]byte(f[1])); err != nil {
			done <- answer{err: err}
			return
		}
		reply, err := h.do(f[2:])
		done <- answer{reply, err}
	}()
	a := <-done
	return a.reply, a.err
}

func cmdComm(_ *helperProc, f []string) (string, error) {
	if len(f) != 2 {
		return "", errors.New("comm: want 1 argument")
	}
	name, err := hex.DecodeString(f[1])
	if err != nil || len(name) == 0 || bytes.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("comm: bad name %q", f[1])
	}
	// On the main thread (see init), so the process's name changes.
	return "", setName(name)
}

// setName names the calling thread (prctl PR_SET_NAME).
func setName(name []byte) error {
	buf := append(name, 0)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&buf[0])), 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_NAME: %w", err)
	}
	return nil
}

// setInt sets the socket option named name to v.
func setInt(fd, level, opt, v int, name string) error {
	if err := unix.SetsockoptInt(fd, level, opt, v); err != nil {
		return fmt.Errorf("setsockopt %s: %w", name, err)
	}
	return nil
}

func cmdSndbuf(_ *helperProc, s socketArgs) (string, error) {
	return "", setInt(s.fd, unix.SOL_SOCKET, unix.SO_SNDBUF, s.nums[0], "SO_SNDBUF")
}

func cmdWrite(_ *helperProc, s socketArgs) (string, error) {
	return strconv.Itoa(s.nums[0]), writeFull(s.fd, s.nums[0])
}

func cmdFill(_ *helperProc, s socketArgs) (string, error) {
	if err := unix.SetNonblock(s.fd, true); err != nil {
		return "", fmt.Errorf("set non-blocking: %w", err)
	}
	buf := make([]byte, 1024)
	total := 0
	for range 4096 {
		w, err := unix.Write(s.fd, buf)
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
}

func cmdRead(_ *helperProc, s socketArgs) (string, error) {
	buf := make([]byte, s.nums[0])
	got := 0
	for got < len(buf) {
		r, err := unix.Read(s.fd, buf[got:])
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
}

func cmdReadAll(_ *helperProc, s socketArgs) (string, error) {
	total, end, err := readToEnd(s.fd)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d %s", total, end), nil
}

func cmdWaitInq(_ *helperProc, s socketArgs) (string, error) {
	want := s.nums[0]
	return "", poll(fmt.Sprintf("wait for %d bytes queued", want), func() (bool, error) {
		v, err := unix.IoctlGetInt(s.fd, unix.SIOCINQ)
		if err != nil {
			return false, fmt.Errorf("ioctl SIOCINQ: %w", err)
		}
		if v > want {
			return false, fmt.Errorf("%d bytes queued", v)
		}
		return v == want, nil
	})
}

// tcpInfo polls the socket's TCP_INFO until cond holds.
func tcpInfo(fd int, what string, cond func(ti *unix.TCPInfo) bool) error {
	return poll(what, func() (bool, error) {
		ti, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return false, fmt.Errorf("getsockopt TCP_INFO: %w", err)
		}
		return cond(ti), nil
	})
}

func cmdWaitStalled(_ *helperProc, s socketArgs) (string, error) {
	return "", tcpInfo(s.fd, "wait for a zero window, all sent acked", func(ti *unix.TCPInfo) bool {
		return ti.Unacked == 0 && ti.Snd_wnd == 0
	})
}

func cmdWaitClosed(_ *helperProc, s socketArgs) (string, error) {
	return "", tcpInfo(s.fd, "wait for CLOSE", func(ti *unix.TCPInfo) bool { return ti.State == tcpClose })
}

// cmdQueued is a command that tells the bytes in a socket's queue (ioctl req).
func cmdQueued(req uint) func(*helperProc, socketArgs) (string, error) {
	return func(_ *helperProc, s socketArgs) (string, error) {
		v, err := unix.IoctlGetInt(s.fd, req)
		if err != nil {
			return "", fmt.Errorf("ioctl %s: %w", s.cmd, err)
		}
		return strconv.Itoa(v), nil
	}
}

func cmdLinger(_ *helperProc, s socketArgs) (string, error) {
	if s.nums[0] < 0 || s.nums[0] > 5 {
		return "", fmt.Errorf("linger: bad time %d", s.nums[0])
	}
	if err := unix.SetsockoptLinger(s.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: int32(s.nums[0])}); err != nil {
		return "", fmt.Errorf("setsockopt SO_LINGER: %w", err)
	}
	return "", nil
}

func cmdQuickAck(_ *helperProc, s socketArgs) (string, error) {
	return "", setInt(s.fd, unix.IPPROTO_TCP, unix.TCP_QUICKACK, 1, "TCP_QUICKACK")
}

// cmdShutdown is a command that shuts the socket down (how: SHUT_WR, SHUT_RD).
func cmdShutdown(how int) func(*helperProc, socketArgs) (string, error) {
	return func(_ *helperProc, s socketArgs) (string, error) {
		if err := unix.Shutdown(s.fd, how); err != nil {
			return "", fmt.Errorf("shutdown: %w", err)
		}
		return "", nil
	}
}

func cmdDrainClose(h *helperProc, s socketArgs) (string, error) {
	// After shutdown(SHUT_RD) read returns 0 once the queue is empty and
	// the kernel sends no window update: the peer learns of the space
	// only from the FIN that close() sends next.
	total, end, err := readToEnd(s.fd)
	if err != nil {
		return "", err
	}
	if end != "EOF" {
		return "", fmt.Errorf("drainclose: read ended with %s after %d bytes", end, total)
	}
	_, err = cmdCloseSocket(h, s)
	return strconv.Itoa(total), err
}

func cmdShutClose(h *helperProc, s socketArgs) (string, error) {
	if _, err := cmdShutdown(unix.SHUT_WR)(h, s); err != nil {
		return "", err
	}
	return cmdCloseSocket(h, s)
}

func cmdSent(_ *helperProc, s socketArgs) (string, error) {
	ti, err := unix.GetsockoptTCPInfo(s.fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return "", fmt.Errorf("getsockopt TCP_INFO: %w", err)
	}
	return strconv.FormatUint(ti.Bytes_sent, 10), nil
}

// cmdCloseSocket closes the socket and forgets its name.
func cmdCloseSocket(h *helperProc, s socketArgs) (string, error) {
	delete(h.socks, s.name)
	if err := unix.Close(s.fd); err != nil {
		return "", fmt.Errorf("close: %w", err)
	}
	return "", nil
}

func cmdCloseNamed(h *helperProc, s socketArgs) (string, error) {
	delete(h.socks, s.name)
	if err := closeWithoutDraining(s.fd); err != nil {
		return "", fmt.Errorf("close: %w", err)
	}
	return "", nil
}

func cmdDescriptor(_ *helperProc, s socketArgs) (string, error) { return strconv.Itoa(s.fd), nil }

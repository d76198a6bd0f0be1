package output

import (
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pipeWriter writes to a pipe (or FIFO) through a non-blocking file
// description of its own, with raw write system calls, and waits in the Go
// runtime's network poller while the pipe is full. An ordinary write enters
// the scheduler's system call path, and the first one after an idle spell
// wakes the runtime's monitor thread (sysmon) from its deep sleep, which then
// polls every 20 µs for as long as the process stays busy: per drain of the
// ring, that was most of the tracer's wakeups and a good part of its CPU.
// A raw write of a non-blocking fd returns at once, so nothing is lost by not
// telling the scheduler. A pipe's own description is safe to make
// non-blocking, unlike the one stdout shares with the shell.
type pipeWriter struct {
	f    *os.File // the description of our own
	rc   syscall.RawConn
	orig io.Writer // where writes go after an error, to fail as they always did
}

// fastWriter returns a pipeWriter for w when w is an *os.File open on a pipe
// or FIFO with a reader, or on a terminal, and w itself otherwise.
func fastWriter(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok {
		return w
	}
	conn, err := f.SyscallConn()
	if err != nil {
		return w
	}
	fd := -1
	_ = conn.Control(func(sysfd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(sysfd), &st) != nil {
			return
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFIFO:
		case unix.S_IFCHR: // a terminal, which blocks too (^S, a stalled ssh session)
			if _, err := unix.IoctlGetTermios(int(sysfd), unix.TCGETS); err != nil {
				return
			}
		default:
			return
		}
		// Opening the fd's /proc link opens the pipe (or terminal) anew: a
		// description with flags of its own. It fails (ENXIO) when no one
		// reads a FIFO. O_NOCTTY: never become the controlling terminal.
		fd, _ = unix.Open("/proc/self/fd/"+strconv.Itoa(int(sysfd)), unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	})
	if fd < 0 {
		return w
	}
	p := &pipeWriter{f: os.NewFile(uintptr(fd), f.Name()), orig: w}
	if p.rc, err = p.f.SyscallConn(); err != nil {
		p.f.Close()
		return w
	}
	return p
}

// Write writes all of b, waiting while the pipe is full.
func (p *pipeWriter) Write(b []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := p.rc.Write(func(fd uintptr) bool {
		for written < len(b) {
			n, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[written])), uintptr(len(b)-written))
			switch e {
			case 0:
				written += int(n)
			case unix.EINTR:
			case unix.EAGAIN:
				return false // wait until the pipe has room
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno == 0 {
		return written, nil
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return written, err // abandoned (Out.Abandon): the rest is not written
	}
	// An error (the reader gone, say): the rest goes the ordinary way, which
	// fails as a write of the original file does (EPIPE on stdout raises
	// SIGPIPE, for one).
	n, err := p.orig.Write(b[written:])
	return written + n, err
}

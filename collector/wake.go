package collector

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ringWaker turns the kernel's ring buffer wakeups (BPF_RB_FORCE_WAKEUP,
// sent once the ring holds wakeup_bytes) into a channel, through the Go
// runtime's network poller: no thread sits in a blocking epoll_wait between
// drains, so an idle tracer costs the host almost no wakeups.
type ringWaker struct {
	f       *os.File
	wake    chan struct{} // a drain is due
	drained chan struct{} // the reader drained
	done    chan struct{}
}

// newRingWaker watches a duplicate of the ring map's fd; ready reports
// whether the ring holds enough to be drained early.
func newRingWaker(mapFD int, ready func() bool) (*ringWaker, error) {
	fd, err := unix.FcntlInt(uintptr(mapFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup ring buffer fd: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ring buffer fd: %w", err)
	}
	w := &ringWaker{f: os.NewFile(uintptr(fd), "ringbuf"), wake: make(chan struct{}, 1),
		drained: make(chan struct{}, 1), done: make(chan struct{})}
	rc, err := w.f.SyscallConn()
	if err != nil {
		w.f.Close()
		return nil, fmt.Errorf("ring buffer fd: %w", err)
	}
	go func() {
		defer close(w.done)
		for {
			// The callback runs at once, then each time the poller sees the
			// fd become readable; the goroutine is parked in between.
			if err := rc.Read(func(uintptr) bool { return ready() }); err != nil {
				return // closed
			}
			select {
			case w.wake <- struct{}{}:
			default:
			}
			// The ring stays above the mark until the reader drains it.
			<-w.drained
		}
	}()
	return w, nil
}

// C delivers a value when the ring should be drained before the period ends.
func (w *ringWaker) C() <-chan struct{} { return w.wake }

// Drained tells the waker that the reader has emptied the ring.
func (w *ringWaker) Drained() {
	select {
	case w.drained <- struct{}{}:
	default:
	}
}

// Close stops the watch.
func (w *ringWaker) Close() {
	w.f.Close()
	w.Drained() // in case the goroutine waits for a drain
	<-w.done
}

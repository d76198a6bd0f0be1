//go:build !ringlib

package collector

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// drainClock says when the reader drains the ring: every period, early when
// the kernel wakes the ring's waiters (a program found the ring filled to
// wakeup_bytes: BPF_RB_FORCE_WAKEUP), and at once after Fire. A timerfd and
// the ring's fd sit in an epoll set, edge-triggered, and that one fd sits in
// the Go runtime's network poller. So between drains no thread is awake and
// no Go timer is pending (the runtime's monitor thread sleeps too, where a Go
// timer would wake it at each expiry, and the poller's millisecond timeout
// would wake it early once more), and one drain costs one thread wakeup:
// each one costs tens of microseconds of CPU in a VM.
type drainClock struct {
	ep     *os.File // the epoll set
	rc     syscall.RawConn
	ready  [2]unix.EpollEvent
	period unix.Timespec

	mu    sync.Mutex // guards timer against Fire after Close
	timer int        // the timerfd; -1 once closed
}

// newDrainClock starts a clock of the given period; ringFD, if not -1, is
// the ring buffer map whose wakeups make a drain due at once.
func newDrainClock(period time.Duration, ringFD int) (_ *drainClock, err error) {
	d := &drainClock{timer: -1, period: unix.NsecToTimespec(period.Nanoseconds())}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("drain clock: epoll: %w", err)
	}
	defer func() {
		if err != nil {
			d.Close()
			if d.ep == nil {
				unix.Close(epfd)
			}
		}
	}()
	if d.timer, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("drain clock: timerfd: %w", err)
	}
	for _, fd := range []int{d.timer, ringFD} {
		if fd < 0 {
			continue
		}
		// Edge-triggered: an fd is reported once per kernel wakeup, so a
		// ring that stays filled does not keep the set ready.
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("drain clock: watch fd %d: %w", fd, err)
		}
	}
	spec := unix.ItimerSpec{Interval: d.period, Value: d.period}
	if err := unix.TimerfdSettime(d.timer, 0, &spec, nil); err != nil {
		return nil, fmt.Errorf("drain clock: start timer: %w", err)
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		return nil, fmt.Errorf("drain clock: %w", err)
	}
	d.ep = os.NewFile(uintptr(epfd), "drain clock") // non-blocking: in the network poller
	if d.rc, err = d.ep.SyscallConn(); err != nil {
		return nil, fmt.Errorf("drain clock: %w", err)
	}
	return d, nil
}

// Wait blocks until a drain is due.
func (d *drainClock) Wait() error {
	var werr error
	err := d.rc.Read(func(fd uintptr) bool {
		// epoll_pwait with no timeout, as a raw system call: it cannot
		// block, and the runtime's monitor thread need not hear of it.
		n, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&d.ready[0])),
			uintptr(len(d.ready)), 0, 0, 0)
		switch {
		case errno == unix.EINTR:
			return false
		case errno != 0:
			werr = errno
			return true
		}
		for _, ev := range d.ready[:n] {
			if int(ev.Fd) == d.timer {
				// Reading the expirations re-arms a periodic timerfd.
				var ticks uint64
				_, _, _ = unix.RawSyscall(unix.SYS_READ, uintptr(d.timer), uintptr(unsafe.Pointer(&ticks)), 8)
			}
		}
		return n > 0
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("drain clock: %w", err)
	}
	return nil
}

// Fire makes a drain due at once; the period restarts from now. It may be
// called from any goroutine, also after Close.
func (d *drainClock) Fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer >= 0 {
		spec := unix.ItimerSpec{Interval: d.period, Value: unix.Timespec{Nsec: 1}}
		_ = unix.TimerfdSettime(d.timer, 0, &spec, nil)
	}
}

// Close stops the clock; a Wait in progress returns an error.
func (d *drainClock) Close() error {
	var errs []error
	if d.ep != nil {
		errs = append(errs, d.ep.Close())
	}
	d.mu.Lock()
	if d.timer >= 0 {
		errs = append(errs, unix.Close(d.timer))
		d.timer = -1
	}
	d.mu.Unlock()
	return errors.Join(errs...)
}

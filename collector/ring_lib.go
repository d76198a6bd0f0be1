//go:build ringlib

package collector

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// This file is the library's side of an A/B (tools/tcpclose-bench): built
// with -tags ringlib, the collector reads the ring with cilium/ebpf's
// ringbuf.Reader and waits for the next drain on a Go timer, in place of
// ring.go's in-place reader and wake.go's timerfd and epoll set. The
// library's reader, used as its documentation says for programs that
// submit with BPF_RB_NO_WAKEUP: each drain reads with a deadline already
// past, so that it returns once the ring is empty. Its epoll set is
// level-triggered: a reader blocked in it would return at once whenever the
// ring holds a record, so the period is a timer and the kernel's early
// wakeup at wakeup_bytes is not heard.

// ring reads a BPF ring buffer map through ringbuf.Reader.
type ring struct {
	m   *ebpf.Map
	rd  *ringbuf.Reader
	rec ringbuf.Record
}

// openRing opens a reader of the ring buffer map fd (size is the library's
// to find out).
func openRing(fd, size int) (*ring, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 1)
	if err != nil {
		return nil, fmt.Errorf("ring buffer: dup: %w", err)
	}
	m, err := ebpf.NewMapFromFD(dup)
	if err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("ring buffer: %w", err)
	}
	rd, err := ringbuf.NewReader(m)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("ring buffer reader: %w", err)
	}
	// A deadline already past: a read returns the records there are, then
	// os.ErrDeadlineExceeded, without blocking.
	rd.SetDeadline(time.Unix(0, 1))
	return &ring{m: m, rd: rd}, nil
}

// next returns the next record's data, valid until the next call; ok is
// false once the ring is empty.
func (r *ring) next() (data []byte, ok bool, err error) {
	err = r.rd.ReadInto(&r.rec)
	switch {
	case err == nil:
		return r.rec.RawSample, true, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, false, nil
	}
	return nil, false, err
}

// release is a no-op: the library gives each record's room back as it reads it.
func (r *ring) release() {}

func (r *ring) close() error { return errors.Join(r.rd.Close(), r.m.Close()) }

// drainClock says when the reader drains the ring: every period, and at
// once after Fire.
type drainClock struct {
	period time.Duration
	timer  *time.Timer
	fire   chan struct{}
	once   sync.Once
	closed chan struct{}
}

// newDrainClock starts a clock of the given period; ringFD is not watched
// (see the top of this file).
func newDrainClock(period time.Duration, ringFD int) (*drainClock, error) {
	return &drainClock{period: period, timer: time.NewTimer(period), fire: make(chan struct{}, 1),
		closed: make(chan struct{})}, nil
}

// Wait blocks until a drain is due.
func (d *drainClock) Wait() error {
	select {
	case <-d.timer.C:
	case <-d.fire:
	case <-d.closed:
		return errors.New("drain clock: closed")
	}
	d.timer.Reset(d.period)
	return nil
}

// Fire makes a drain due at once; it may be called from any goroutine,
// also after Close.
func (d *drainClock) Fire() {
	select {
	case d.fire <- struct{}{}:
	default:
	}
}

// Close stops the clock; a Wait in progress returns an error.
func (d *drainClock) Close() error {
	d.once.Do(func() {
		d.timer.Stop()
		close(d.closed)
	})
	return nil
}

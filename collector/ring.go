//go:build !ringlib

package collector

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring reads a BPF ring buffer map's records in place, through a mapping of
// its own: no copy, lock or system call per record, and none per drain (the
// positions are read from memory). The layout is the kernel's
// (kernel/bpf/ringbuf.c): at offset 0 the consumer page, which user space
// writes; then, read-only, the producer page and the data pages, mapped
// twice in a row so that a record that wraps around is contiguous. Each
// record is an 8-byte header (length, with a busy and a discard bit) and its
// data, padded to 8 bytes. It is not safe for concurrent use.
type ring struct {
	cons, prod []byte   // the mappings
	consPos    *uintptr // the position up to which records are consumed
	prodPos    *uintptr // the position up to which records are reserved
	data       []byte   // the data pages, twice
	mask       uintptr
	pos        uintptr // the end of the records handed out
}

const (
	ringBusy    = unix.BPF_RINGBUF_BUSY_BIT
	ringDiscard = unix.BPF_RINGBUF_DISCARD_BIT
	ringHdrSize = unix.BPF_RINGBUF_HDR_SZ
	// ringBusySpins bounds the wait for a record that a program has
	// reserved and not yet submitted: a few microseconds, then the drain
	// ends and the record is read by the next one.
	ringBusySpins = 1 << 12
)

// openRing maps the ring buffer map fd of size bytes (a power of two).
func openRing(fd, size int) (*ring, error) {
	page := os.Getpagesize()
	if size <= 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d is not a power of two", size)
	}
	cons, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map ring buffer consumer page: %w", err)
	}
	prod, err := unix.Mmap(fd, int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		_ = unix.Munmap(cons)
		return nil, fmt.Errorf("map ring buffer data pages: %w", err)
	}
	r := &ring{
		cons:    cons,
		prod:    prod,
		consPos: (*uintptr)(unsafe.Pointer(&cons[0])),
		prodPos: (*uintptr)(unsafe.Pointer(&prod[0])),
		data:    prod[page:],
		mask:    uintptr(size - 1),
	}
	r.pos = atomic.LoadUintptr(r.consPos)
	return r, nil
}

// next returns the next record's data, which stays valid until the next
// call; it first gives the previous record's room back to the kernel. ok
// is false when no record is ready: the ring is empty, or its next record
// is still being written. A malformed ring is an error.
func (r *ring) next() (data []byte, ok bool, err error) {
	atomic.StoreUintptr(r.consPos, r.pos)
	for {
		prod := atomic.LoadUintptr(r.prodPos)
		if prod == r.pos {
			return nil, false, nil
		}
		hdr := (*uint32)(unsafe.Pointer(&r.data[r.pos&r.mask]))
		n := atomic.LoadUint32(hdr) // orders the data after the kernel's commit
		for spins := 0; n&ringBusy != 0; spins++ {
			if spins == ringBusySpins {
				return nil, false, nil
			}
			n = atomic.LoadUint32(hdr)
		}
		size := uintptr(n &^ (ringBusy | ringDiscard))
		end := r.pos + (ringHdrSize+size+7)&^7
		if end-r.pos > uintptr(len(r.data)/2) || prod-end > prod-r.pos {
			return nil, false, fmt.Errorf("ring buffer record of %d bytes at %d overruns the ring (producer at %d)", size, r.pos, prod)
		}
		start := r.pos&r.mask + ringHdrSize
		r.pos = end
		if n&ringDiscard != 0 {
			atomic.StoreUintptr(r.consPos, r.pos)
			continue
		}
		return r.data[start : start+size : start+size], true, nil
	}
}

// release gives the room of every record handed out back to the kernel.
func (r *ring) release() { atomic.StoreUintptr(r.consPos, r.pos) }

// close releases the records handed out and unmaps the ring.
func (r *ring) close() error {
	r.release()
	err := errors.Join(unix.Munmap(r.prod), unix.Munmap(r.cons))
	r.prod, r.cons, r.data = nil, nil, nil
	return err
}

package collector

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
)

// Run streams events to sink until ctx is done, then drains what the ring
// still holds and returns. sink runs on its own goroutine: a slow sink makes
// the collector drop (and count) events, never stall the ring reader.
// Events come in the order the kernel wrote them, which is their time
// order (two events on different CPUs very close together, usually under a
// microsecond, may come in either order); a provisional reset_received is held up to one
// drain period, and the events after it wait behind it (see ordered).
func (c *Collector) Run(ctx context.Context, sink func(*Event)) error {
	return c.RunBatches(ctx, sink, nil)
}

// RunBatches is Run for a sink that buffers its output: events come in
// batches (what one drain of the ring read, in pieces of at most batchLen),
// and flush, if not nil, is called once the sink has caught up with the
// reader, so output is written in large pieces and never later than one
// drain period. At most Options.QueueLen events wait for the sink; past
// that, whole batches are dropped and counted in Stats.SinkDropped.
func (c *Collector) RunBatches(ctx context.Context, sink func(*Event), flush func()) error {
	nBatches := max(2, (c.opts.QueueLen+batchLen-1)/batchLen)
	q := &batchQueue{full: make(chan *batch, nBatches), left: nBatches, dropped: &c.sinkDropped}
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.deliver(sink, flush)
	}()
	err := c.read(ctx, q)
	close(q.full)
	<-done
	return err
}

// read drains the ring into q until ctx is done. The ring is read through a
// mapping of its own (ring.go), made and unmapped here: Close never pulls it
// from under a running reader.
func (c *Collector) read(ctx context.Context, q *batchQueue) error {
	events := c.coll.Maps[bpf.TcpcloseMapEvents]
	rb, err := openRing(events.FD(), int(events.MaxEntries()))
	if err != nil {
		return err
	}
	defer rb.close()
	// Between drains the reader sleeps until the period ends, or the
	// kernel's wakeup once the ring fills to wakeup_bytes, or ctx ends.
	ringFD := -1
	if c.wakeupBytes > 0 {
		ringFD = events.FD()
	}
	clock, err := newDrainClock(c.opts.DrainEvery, ringFD)
	if err != nil {
		return err
	}
	defer clock.Close()
	defer context.AfterFunc(ctx, clock.Fire)()
	r := &reader{ring: rb, decode: c.decoder.Decode, join: c.tracker.join, out: newOrdered(q), decoded: &c.decoded}
	return r.run(ctx, clock.Wait)
}

// records is where the reader takes raw records from: the ring (ring.go).
type records interface {
	// next returns the next record, valid until the next call; ok is
	// false when none is ready.
	next() (raw []byte, ok bool, err error)
	// release gives the room of the records read back to the kernel.
	release()
}

// reader turns the ring's records into events, one drain at a time: each
// record is decoded in place into the batch it goes out in, joined with
// what is known of its socket, and handed to out, which keeps the time
// order while provisional resets are held back.
type reader struct {
	ring    records
	decode  func(raw []byte, ev *Event) error
	join    func(ev *Event)
	out     *ordered
	decoded *atomic.Uint64
}

// run drains the ring, then waits for the next drain to be due, until ctx
// is done (one last drain follows, and every event held is released) or
// an error.
func (r *reader) run(ctx context.Context, wait func() error) error {
	defer r.out.flush()
	for cycle := uint64(1); ; cycle++ {
		stopping := ctx.Err() != nil
		if err := r.drain(cycle); err != nil || stopping {
			return err
		}
		r.out.expire(cycle)
		r.out.q.send()
		if err := wait(); err != nil {
			return err
		}
	}
}

// drain reads every record ready, as drain number cycle.
func (r *reader) drain(cycle uint64) error {
	var n uint64
	defer func() {
		r.ring.release()
		r.decoded.Add(n)
	}()
	for {
		raw, ok, err := r.ring.next()
		if err != nil {
			return fmt.Errorf("read ring buffer: %w", err)
		}
		if !ok {
			return nil
		}
		ev := r.out.q.slot()
		if err := r.decode(raw, ev); err != nil {
			return err
		}
		n++
		r.join(ev)
		r.out.place(ev, cycle)
	}
}

// deliver hands each batch's events to sink and takes the batch back,
// calling flush (if not nil) whenever no batch is waiting, until q.full is
// closed. It runs on the sink's goroutine.
func (q *batchQueue) deliver(sink func(*Event), flush func()) {
	for b := range q.full {
		for i := range b.events {
			sink(&b.events[i])
		}
		if flush != nil && len(q.full) == 0 {
			flush()
		}
		b.events = b.events[:0]
		q.put(b)
	}
}

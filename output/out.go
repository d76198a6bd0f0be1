package output

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// ErrAbandoned is returned by the writes to an Out that was abandoned.
var ErrAbandoned = errors.New("output abandoned: not read in time")

// Out is where the sinks write: stdout, mostly. On a pipe it writes the way
// pipeWriter does, and a write waiting for room can be given up on
// (Abandon), so that a process stops in bounded time even when nobody reads
// its output. Elsewhere (a file, a terminal) a write that has begun cannot
// be cut short, but none begins once the Out is abandoned.
type Out struct {
	w    io.Writer
	pipe *pipeWriter // w, when it is one

	mu        sync.Mutex
	abandoned bool
	err       error  // the first write error
	lost      uint64 // lines not (completely) written
}

// NewOut returns an Out writing to w.
func NewOut(w io.Writer) *Out {
	o := &Out{w: fastWriter(w)}
	o.pipe, _ = o.w.(*pipeWriter)
	return o
}

// Write writes p, or fails at once once the Out is abandoned.
func (o *Out) Write(p []byte) (int, error) {
	o.mu.Lock()
	abandoned := o.abandoned
	o.mu.Unlock()
	if abandoned {
		o.fail(ErrAbandoned, p)
		return 0, ErrAbandoned
	}
	n, err := o.w.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = ErrAbandoned
	}
	if err != nil {
		o.fail(err, p[min(n, len(p)):])
	}
	return n, err
}

// fail records err and counts the lines of rest, what was not written.
func (o *Out) fail(err error, rest []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
	o.lost += uint64(bytes.Count(rest, []byte{'\n'}))
}

// Abandon gives the output grace to take what is being written: a write
// still waiting for room after that fails with ErrAbandoned, and so does
// every later one. Only the first call counts.
func (o *Out) Abandon(grace time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.abandoned {
		return
	}
	at := time.Now().Add(grace)
	if o.pipe != nil {
		// A deadline set while a write waits applies to that write too.
		_ = o.pipe.f.SetWriteDeadline(at)
	}
	time.AfterFunc(grace, func() {
		o.mu.Lock()
		o.abandoned = true
		o.mu.Unlock()
	})
}

// LinesLost returns how many lines were not written, or only in part.
func (o *Out) LinesLost() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lost
}

// Err returns the first write error, ErrAbandoned for a write cut short.
func (o *Out) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// Counted is a Sink that stops writing after its first error (the output
// closed, or abandoned) and counts the events it then refused. With the lines
// its Out could not write (one per event in NDJSON and the logs), that is
// what the output missed.
type Counted struct {
	sink    Sink
	refused uint64
	err     error
}

// NewCounted returns a Counted writing to sink.
func NewCounted(sink Sink) *Counted { return &Counted{sink: sink} }

// Write implements Sink.
func (c *Counted) Write(ev *collector.Event) error {
	if c.err != nil {
		c.refused++
		return c.err
	}
	if err := c.sink.Write(ev); err != nil {
		c.err = fmt.Errorf("write output: %w", err)
	}
	return c.err
}

// Flush implements Sink.
func (c *Counted) Flush() error {
	if c.err != nil {
		return c.err
	}
	if err := c.sink.Flush(); err != nil {
		c.err = fmt.Errorf("write output: %w", err)
	}
	return c.err
}

// Refused returns how many events came after the error and were not
// written at all.
func (c *Counted) Refused() uint64 { return c.refused }

// Err returns the error that stopped the writes, or nil.
func (c *Counted) Err() error { return c.err }

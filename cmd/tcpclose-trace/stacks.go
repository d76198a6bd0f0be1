package main

import (
	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/symbolize"
)

// maxRawStacks bounds the captured stacks kept as read from the kernel.
const maxRawStacks = 4096

// stackResolver gives events with a captured stack (--stacks) their
// symbolized frames. It reads the process's mappings as soon as its event
// arrives, so that a process that exits soon after is still resolved.
type stackResolver struct {
	c   *collector.Collector
	sym *symbolize.Symbolizer
	raw map[uint32][]symbolize.RawFrame // by stack id: the kernel's ids are stable
}

func newStackResolver(c *collector.Collector) *stackResolver {
	return &stackResolver{c: c, sym: symbolize.New(symbolize.Options{}), raw: make(map[uint32][]symbolize.RawFrame)}
}

// withStacks returns enrich followed by r's resolution; enrich alone when r is nil.
func withStacks(enrich func(*collector.Event), r *stackResolver) func(*collector.Event) {
	if r == nil {
		return enrich
	}
	return func(ev *collector.Event) {
		enrich(ev)
		r.resolve(ev)
	}
}

func (r *stackResolver) resolve(ev *collector.Event) {
	if ev.StackID == 0 || !ev.OwnerKnown {
		return
	}
	raw, ok := r.raw[ev.StackID]
	if !ok {
		var err error
		if raw, err = r.c.StackFrames(ev.StackID); err != nil || len(raw) == 0 {
			return
		}
		if len(r.raw) >= maxRawStacks {
			clear(r.raw)
		}
		r.raw[ev.StackID] = raw
	}
	r.sym.Learn(ev.PID)
	ev.Stack = &collector.Stack{Frames: r.sym.Symbolize(ev.PID, raw)}
}

// close releases the symbolizer's files.
func (r *stackResolver) close() {
	if r != nil {
		r.sym.Close()
	}
}

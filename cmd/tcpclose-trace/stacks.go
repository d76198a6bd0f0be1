package main

import (
	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/kubepods"
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

// withStacks returns enrich followed by the resolution of the stacks c
// captures (Options.Stacks), and what releases the resolver; enrich and a
// no-op when c captures none.
func withStacks(enrich func(*collector.Event), c *collector.Collector, on bool) (func(*collector.Event), func()) {
	if !on {
		return enrich, func() {}
	}
	r := newStackResolver(c)
	return func(ev *collector.Event) {
		enrich(ev)
		r.resolve(ev)
	}, r.sym.Close
}

// openCollector loads and attaches the programs, and returns the collector,
// what enriches its events (their pods and stacks), and what closes both.
func openCollector(opts collector.Options, pods *kubepods.Resolver) (*collector.Collector, func(*collector.Event), func(), error) {
	c, err := collector.Open(opts)
	if err != nil {
		return nil, nil, nil, err
	}
	enrich, closeStacks := withStacks(enricher(pods), c, opts.Stacks)
	return c, enrich, func() {
		closeStacks()
		c.Close()
	}, nil
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

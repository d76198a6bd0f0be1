package main

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// stormEvery is how often what the budget suppressed is told.
const stormEvery = time.Second

// stormTotalsCap bounds the sources remembered for the exit summary.
const stormTotalsCap = 4096

// stormWatch tells, once per interval, what the budget suppressed, and
// keeps the largest sources of the run for the summary.
type stormWatch struct {
	c      *collector.Collector
	last   time.Time
	before collector.Counters
	totals map[stormKey]*collector.StormSource
}

type stormKey struct {
	kind   collector.Kind
	reason string
	addr   netip.Addr
	port   uint16
}

func newStormWatch(c *collector.Collector, now time.Time) *stormWatch {
	w := &stormWatch{c: c, last: now, totals: make(map[stormKey]*collector.StormSource)}
	w.before, _ = c.Counters()
	return w
}

// poll returns the notices of the interval that ended, if one did (or
// force) and anything was suppressed in it.
func (w *stormWatch) poll(now time.Time, force bool) []string {
	if !force && now.Sub(w.last) < stormEvery {
		return nil
	}
	interval := now.Sub(w.last)
	w.last = now
	cur, err := w.c.Counters()
	if err != nil {
		return nil
	}
	delta := cur.Sub(&w.before)
	w.before = cur
	if delta.SuppressedTotal() == 0 {
		return nil
	}
	sources, err := w.c.StormSources()
	if err != nil {
		sources = nil
	}
	for i := range sources {
		s := &sources[i]
		k := stormKey{s.Kind, s.Reason, s.RAddr, s.Port}
		if t, ok := w.totals[k]; ok {
			t.Count += s.Count
		} else if len(w.totals) < stormTotalsCap {
			cp := *s
			w.totals[k] = &cp
		}
	}
	return output.StormNotices(&delta, sources, w.c.Reasons(), interval)
}

// top returns the n largest sources of the run.
func (w *stormWatch) top(n int) []collector.StormSource {
	all := make([]collector.StormSource, 0, len(w.totals))
	for _, s := range w.totals {
		all = append(all, *s)
	}
	slices.SortFunc(all, func(a, b collector.StormSource) int { return cmp.Compare(b.Count, a.Count) })
	return all[:min(n, len(all))]
}

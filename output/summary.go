package output

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

type summaryKey struct {
	pid  uint32
	comm string
	kind collector.Kind
}

// Summary counts streamed events per process and kind, shown or not.
type Summary struct {
	counts map[summaryKey]uint64
	// The last keys counted and their counts, added to counts on Write:
	// streams are runs of a few (process, kind) pairs, which then cost no
	// map access per event.
	recent [4]summaryKey
	n      [4]uint64
	next   int

	// Unwritten is how many events could not be written to the output
	// (it was closed, or not read in time when the run stopped).
	Unwritten uint64
	// NotShown is how many events the selection left out of the output
	// (Selected.Hidden); they are counted above all the same.
	NotShown uint64
	// Storm is the largest sources of the events the budget suppressed.
	Storm []collector.StormSource

	// sites counts the events with a stack by kind and call site.
	sites map[siteKey]uint64
}

type siteKey struct {
	kind collector.Kind
	site string // the stack's top frames, escaped
}

// maxSites bounds the call sites the summary counts; later ones are not.
const maxSites = 1024

// summarySiteFrames is how many frames name a call site in the summary.
const summarySiteFrames = 2

func (s *Summary) addSite(ev *collector.Event) {
	k := siteKey{ev.Kind, StackLine(ev.Stack, summarySiteFrames)}
	if s.sites == nil {
		s.sites = make(map[siteKey]uint64)
	}
	if _, ok := s.sites[k]; ok || len(s.sites) < maxSites {
		s.sites[k]++
	}
}

// NewSummary returns an empty Summary.
func NewSummary() *Summary { return &Summary{counts: make(map[summaryKey]uint64)} }

// Add counts one event.
func (s *Summary) Add(ev *collector.Event) {
	if ev.Stack != nil && len(ev.Stack.Frames) > 0 {
		s.addSite(ev)
	}
	k := summaryKey{kind: ev.Kind, comm: "-"}
	if ev.OwnerKnown {
		k.pid, k.comm = ev.PID, ev.Comm
	}
	for i := range s.recent {
		if s.n[i] > 0 && s.recent[i] == k {
			s.n[i]++
			return
		}
	}
	i := s.next
	s.next = (s.next + 1) % len(s.recent)
	if s.n[i] > 0 {
		s.counts[s.recent[i]] += s.n[i]
	}
	s.recent[i], s.n[i] = k, 1
}

// settle moves the recent counts into counts.
func (s *Summary) settle() {
	for i := range s.recent {
		if s.n[i] > 0 {
			s.counts[s.recent[i]] += s.n[i]
			s.n[i] = 0
		}
	}
}

// Write prints the per-process table, then the kernel's totals for the run.
func (s *Summary) Write(w io.Writer, c collector.Counters, st collector.Stats, reasons *collector.Reasons) error {
	s.settle()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	s.writeOwners(tw)
	s.writeCounters(tw, c, st, reasons)
	s.writeSites(tw)
	s.writeStorm(tw)
	return tw.Flush()
}

// writeOwners writes the events by process and kind, most first.
func (s *Summary) writeOwners(tw io.Writer) {
	keys := make([]summaryKey, 0, len(s.counts))
	for k := range s.counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b summaryKey) int {
		return cmp.Or(cmp.Compare(s.counts[b], s.counts[a]), cmp.Compare(a.pid, b.pid),
			cmp.Compare(a.comm, b.comm), cmp.Compare(a.kind, b.kind))
	})
	fmt.Fprintln(tw, "\nSUMMARY\nPID\tCOMM\tKIND\tEVENTS")
	for _, k := range keys {
		pid := "-"
		if k.pid != 0 {
			pid = fmt.Sprint(k.pid)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", pid, Printable(k.comm), k.kind, s.counts[k])
	}
}

// writeCounters writes the kernel's counters and the tracer's own.
func (s *Summary) writeCounters(tw io.Writer, c collector.Counters, st collector.Stats, reasons *collector.Reasons) {
	fmt.Fprintln(tw, "\nKERNEL COUNTERS (exact, this run)\tCOUNT")
	for _, k := range collector.Kinds() {
		fmt.Fprintf(tw, "%s\t%d\n", k, c.Kind(k))
	}
	for v, n := range c.ResetReasons {
		if n == 0 {
			continue
		}
		name := "unknown"
		if v != collector.ReasonUnknownSlot {
			name = Printable(reasons.Name(uint16(v)))
		}
		fmt.Fprintf(tw, "resets sent, %s\t%d\n", name, n)
	}
	fmt.Fprintf(tw, "unread bytes discarded\t%d\n", c.UnreadBytes)
	fmt.Fprintf(tw, "unsent bytes discarded\t%d\n", c.UnsentBytes)
	fmt.Fprintf(tw, "refused bytes\t%d\n", c.RefusedBytes)
	fmt.Fprintf(tw, "ring records lost\t%d\n", c.RingLost)
	fmt.Fprintf(tw, "program runs skipped by the kernel\t%d\n", st.SkippedRuns)
	fmt.Fprintf(tw, "events dropped (slow output)\t%d\n", st.SinkDropped)
	fmt.Fprintf(tw, "correlation entries evicted\t%d\n", st.Evictions)
	fmt.Fprintf(tw, "events not written (stuck output)\t%d\n", s.Unwritten)
	fmt.Fprintf(tw, "events not shown (--kinds, --all)\t%d\n", s.NotShown)
	for _, k := range collector.Kinds() {
		if n := c.Suppressed[k]; n > 0 {
			fmt.Fprintf(tw, "%s suppressed (over the budget)\t%d\n", k, n)
		}
	}
}

// writeSites writes the ten call sites with the most events (--stacks).
func (s *Summary) writeSites(tw io.Writer) {
	if len(s.sites) == 0 {
		return
	}
	sites := make([]siteKey, 0, len(s.sites))
	for k := range s.sites {
		sites = append(sites, k)
	}
	slices.SortFunc(sites, func(a, b siteKey) int {
		return cmp.Or(cmp.Compare(s.sites[b], s.sites[a]), cmp.Compare(a.kind, b.kind), cmp.Compare(a.site, b.site))
	})
	fmt.Fprintln(tw, "\nCALL SITES (--stacks)\tKIND\tEVENTS")
	for _, k := range sites[:min(len(sites), 10)] {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", k.site, k.kind, s.sites[k])
	}
}

// writeStorm writes the largest sources of the events suppressed.
func (s *Summary) writeStorm(tw io.Writer) {
	if len(s.Storm) == 0 {
		return
	}
	fmt.Fprintln(tw, "\nSUPPRESSED, LARGEST SOURCES\tKIND\tEVENTS")
	for i := range s.Storm {
		src := &s.Storm[i]
		kind := src.Kind.String()
		if src.Reason != "" {
			kind += " " + Printable(src.Reason)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\n", StormSourceName(src), kind, src.Count)
	}
}

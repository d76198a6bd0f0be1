package output

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// StormTop is how many sources a storm notice names per kind.
const StormTop = 3

// StormNotices words what the budget suppressed in one interval: a line
// per kind (per reason, for reset_sent) with its count and its largest
// sources, e.g. "+41230 reset_sent NO_SOCKET suppressed in the last 1.0s
// (over the budget); top: 10.0.0.9 -> :1 40100". delta holds the
// suppressed counts of the interval, sources what StormSources returned
// for it. Names are escaped by Printable. Empty when nothing was
// suppressed.
func StormNotices(delta *collector.Counters, sources []collector.StormSource, reasons *collector.Reasons, interval time.Duration) []string {
	type group struct {
		kind   collector.Kind
		reason string
		count  uint64
	}
	var groups []group
	for _, k := range collector.Kinds() {
		n := delta.Suppressed[k]
		if n == 0 {
			continue
		}
		if k != collector.KindResetSent {
			groups = append(groups, group{kind: k, count: n})
			continue
		}
		for r, rn := range delta.SuppressedReasons {
			if rn == 0 {
				continue
			}
			name := "unknown"
			if r != collector.ReasonUnknownSlot {
				name = reasons.Name(uint16(r))
			}
			groups = append(groups, group{kind: k, reason: name, count: rn})
		}
	}
	slices.SortStableFunc(groups, func(a, b group) int { return cmp.Compare(b.count, a.count) })
	lines := make([]string, 0, len(groups))
	for _, g := range groups {
		var b strings.Builder
		fmt.Fprintf(&b, "+%d %s", g.count, g.kind)
		if g.reason != "" {
			b.WriteString(" " + Printable(g.reason))
		}
		fmt.Fprintf(&b, " suppressed in the last %.1fs (over the budget)", interval.Seconds())
		top := 0
		for _, s := range sources {
			if s.Kind != g.kind || s.Reason != g.reason || top == StormTop {
				continue
			}
			if top == 0 {
				b.WriteString("; top:")
			} else {
				b.WriteString(",")
			}
			top++
			b.WriteString(" " + StormSourceName(&s) + " " + strconv.FormatUint(s.Count, 10))
		}
		lines = append(lines, b.String())
	}
	return lines
}

// StormSourceName names a source as "REMOTE -> :PORT" (its service port).
func StormSourceName(s *collector.StormSource) string {
	r := "-"
	if s.RAddr.IsValid() {
		r = s.RAddr.String()
	}
	return r + " -> :" + strconv.Itoa(int(s.Port))
}

// Package output renders events for people (an aligned table with fix hints)
// and for programs (NDJSON), and summarises a run.
package output

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// Sink writes events. Output may be buffered until Flush.
type Sink interface {
	Write(ev *collector.Event) error
	Flush() error
}

// Table writes one aligned line per event, with a hint the first time each
// anomaly kind appears; buffered until Flush.
type Table struct {
	w        *bufio.Writer
	header   bool
	hinted   map[collector.Kind]bool
	NoHints  bool
	location *time.Location
}

// NewTable returns a Table writing to w.
func NewTable(w io.Writer) *Table {
	return &Table{w: bufio.NewWriter(w), hinted: make(map[collector.Kind]bool), location: time.Local}
}

// Flush implements Sink.
func (t *Table) Flush() error { return t.w.Flush() }

// Notice writes a line that is no event, e.g. what the budget suppressed,
// after the current time. text must be printable (StormNotices' lines are).
func (t *Table) Notice(text string) error {
	_, err := fmt.Fprintf(t.w, "%-12s %s\n", time.Now().In(t.location).Format("15:04:05.000"), text)
	return err
}

// tableStackFrames is how many frames of a stack the table shows.
const tableStackFrames = 3

const tableFormat = "%-12s %7s %-15s %-39s %-39s %-16s %s\n"

// Write implements Sink. Names (comm, pod, container, reason) are printed
// through Printable: whatever bytes they hold, an event is one line with no
// control characters.
func (t *Table) Write(ev *collector.Event) error {
	if !t.header {
		t.header = true
		if _, err := fmt.Fprintf(t.w, tableFormat, "TIME", "PID", "COMM", "LOCAL", "REMOTE", "KIND", "DETAIL"); err != nil {
			return err
		}
	}
	pid, comm := "-", "-"
	if ev.OwnerKnown {
		pid, comm = strconv.FormatUint(uint64(ev.PID), 10), Printable(ev.Comm)
	}
	_, err := fmt.Fprintf(t.w, tableFormat, ev.Time.In(t.location).Format("15:04:05.000"), pid, comm,
		hostPort(ev.LAddr, ev.LPort), hostPort(ev.RAddr, ev.RPort), ev.Kind, Detail(ev))
	if err != nil {
		return err
	}
	if ev.Stack != nil && len(ev.Stack.Frames) > 0 {
		if _, err := fmt.Fprintf(t.w, "  at %s\n", stackLine(ev.Stack, tableStackFrames, " ← ")); err != nil {
			return err
		}
	}
	if !t.NoHints && ev.Kind.Anomaly() && !t.hinted[ev.Kind] {
		t.hinted[ev.Kind] = true
		_, err = fmt.Fprintf(t.w, "  hint(%s): %s\n", ev.Kind, Hint(ev.Kind))
	}
	return err
}

func hostPort(a netip.Addr, port uint16) string {
	if !a.IsValid() {
		return "-"
	}
	return netip.AddrPortFrom(a, port).String()
}

// Detail is the event's short, kind-specific detail column; the names in it
// are escaped by Printable.
func Detail(ev *collector.Event) string {
	b := make([]byte, 0, 64)
	add := func(k string, v string) {
		if len(b) > 0 {
			b = append(b, ' ')
		}
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, v...)
	}
	switch ev.Kind {
	case collector.KindUnreadClose:
		add("unread", strconv.FormatUint(uint64(ev.UnreadBytes), 10))
		if ev.UnsentBytes > 0 {
			add("unsent", strconv.FormatUint(uint64(ev.UnsentBytes), 10))
		}
	case collector.KindAbortClose:
		add("unsent", strconv.FormatUint(uint64(ev.UnsentBytes), 10))
	case collector.KindDataAfterClose:
		add("refused", strconv.FormatUint(uint64(ev.RefusedBytes), 10))
		if ev.SinceClose > 0 {
			add("after_close", ev.SinceClose.Round(time.Microsecond).String())
		}
	case collector.KindResetSent:
		add("reason", Printable(ev.Reason))
	}
	if ev.State != 0 {
		add("state", ev.State.String())
	}
	if ev.Kind == collector.KindDataAfterClose {
		add("reason", Printable(ev.Reason))
	}
	if ev.ShutWR && ev.Kind == collector.KindUndrainedClose {
		add("after", "shutdown(SHUT_WR)")
	}
	if ev.OwnerKnown && ev.TID != ev.PID && ev.TID != 0 && ev.Thread != ev.Comm {
		// A thread named otherwise than its process acted: name it.
		add("thread", Printable(ev.Thread))
		add("tid", strconv.FormatUint(uint64(ev.TID), 10))
	}
	if p := ev.Pod; p != nil {
		add("pod", Printable(PodName(p)))
		if p.Container != "" {
			add("container", Printable(p.Container))
		}
	}
	return string(b)
}

// PodName is namespace/name, or what of it the node could tell (the UID
// when no name was found).
func PodName(p *collector.PodInfo) string {
	switch {
	case p.Name == "":
		return "uid:" + p.UID
	case p.Namespace == "":
		return p.Name
	}
	return p.Namespace + "/" + p.Name
}

package output

import (
	"fmt"
	"strings"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// Selection is the set of event kinds an output shows (the table, NDJSON,
// the daemon's log lines). What it leaves out is still counted: in the
// summary, the kernel counters and the metrics.
type Selection struct{ kinds uint32 }

// DefaultSelection is what is shown when nothing is asked: the events that
// lost data or reset a connection (unread_close, data_after_close,
// abort_close, reset_received, reset_sent). An undrained_close is shown
// only with the data_after_close that follows it (see Selected): without
// one, it is harmless, and on a real server it is the commonest close.
func DefaultSelection() Selection {
	return SelectKinds(collector.KindUnreadClose, collector.KindDataAfterClose, collector.KindAbortClose,
		collector.KindResetReceived, collector.KindResetSent)
}

// AllKinds selects every kind (--all).
func AllKinds() Selection { return SelectKinds(collector.Kinds()...) }

// SelectKinds selects the given kinds.
func SelectKinds(kinds ...collector.Kind) Selection {
	var s Selection
	for _, k := range kinds {
		s.kinds |= 1 << k
	}
	return s
}

// ParseKinds parses a comma-separated list of kind names, such as
// "unread_close,undrained_close". Spaces around names are ignored; an
// empty list or an unknown name is an error that names the valid ones.
func ParseKinds(list string) (Selection, error) {
	var s Selection
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		k, err := collector.ParseKind(name)
		if err != nil {
			if name == "" {
				return Selection{}, fmt.Errorf("empty event kind in %q (kinds: %s)", list, AllKinds())
			}
			return Selection{}, fmt.Errorf("unknown event kind %q (kinds: %s)", name, AllKinds())
		}
		s.kinds |= 1 << k
	}
	return s, nil
}

// Has reports whether kind k is selected.
func (s Selection) Has(k collector.Kind) bool { return k < 32 && s.kinds&(1<<k) != 0 }

// Kinds lists the selected kinds in their stable order.
func (s Selection) Kinds() []collector.Kind {
	var ks []collector.Kind
	for _, k := range collector.Kinds() {
		if s.Has(k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// String is the selection as ParseKinds reads it.
func (s Selection) String() string {
	names := make([]string, 0, 8)
	for _, k := range s.Kinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ",")
}

// Stories reports whether an undrained_close is shown with the
// data_after_close that follows it: when data_after_close is selected and
// undrained_close is not (selected, it is shown when it happens).
func (s Selection) Stories() bool {
	return s.Has(collector.KindDataAfterClose) && !s.Has(collector.KindUndrainedClose)
}

// Selected is a Sink that writes the events of its selection to another
// Sink. When the selection tells stories (Selection.Stories), a
// data_after_close that follows an undrained_close of the same socket is
// written right after that close (Event.UndrainedClose): the two read as
// one story, who closed without draining, how long before the peer's data
// came, and how many bytes were refused. The close carries its own time,
// earlier than the lines before it. Every other event of a kind not
// selected is left out and counted.
type Selected struct {
	sink   Sink
	sel    Selection
	story  collector.Event // the close of a story, reused
	hidden uint64
}

// NewSelected returns a Selected writing the kinds of sel to sink.
func NewSelected(sink Sink, sel Selection) *Selected { return &Selected{sink: sink, sel: sel} }

// Write implements Sink.
func (s *Selected) Write(ev *collector.Event) error {
	if !s.sel.Has(ev.Kind) {
		s.hidden++
		return nil
	}
	if ev.Kind == collector.KindDataAfterClose && s.sel.Stories() && ev.UndrainedClose(&s.story) {
		if s.hidden > 0 {
			s.hidden-- // counted when it was left out, shown now
		}
		if err := s.sink.Write(&s.story); err != nil {
			return err
		}
	}
	return s.sink.Write(ev)
}

// Flush implements Sink.
func (s *Selected) Flush() error { return s.sink.Flush() }

// Hidden returns how many events were left out: those of kinds not
// selected, less the undrained closes shown later in a story.
func (s *Selected) Hidden() uint64 { return s.hidden }

package selftest

import (
	"fmt"
	"strings"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// Owners of an expected event.
const (
	closer  = "closer"
	peer    = "peer"
	noOwner = ""
)

// want is one event a scenario must produce, and the row it proves.
type want struct {
	row     string
	kind    collector.Kind
	who     string // closer, peer, or noOwner
	lport   uint16
	rport   uint16
	unread  uint32
	unsent  uint32
	refused uint32
	reason  string // for reset_sent and data_after_close, where the kernel names reasons
}

// expected lists the events a scenario must produce, nothing more.
func expected(name string, r *scenario.Result) []want {
	c, p := r.CloserPort, r.PeerPort
	received := func(who string, lport, rport uint16) want {
		return want{row: RowResetReceived, kind: collector.KindResetReceived, who: who, lport: lport, rport: rport}
	}
	switch name {
	case "unread_close":
		return []want{
			{row: RowUnread, kind: collector.KindUnreadClose, who: closer, lport: c, rport: p, unread: r.UnreadBytes},
			received(peer, p, c),
		}
	case "undrained_fin_wait":
		return []want{
			{row: RowUndrained, kind: collector.KindUndrainedClose, who: closer, lport: c, rport: p},
			{row: RowAfterFinWait, kind: collector.KindDataAfterClose, who: closer, lport: c, rport: p,
				refused: r.RefusedBytes, reason: "TCP_ABORT_ON_DATA"},
			received(peer, p, c),
		}
	case "undrained_time_wait":
		return []want{
			{row: RowUndrained, kind: collector.KindUndrainedClose, who: closer, lport: c, rport: p},
			{row: RowAfterTimeWait, kind: collector.KindDataAfterClose, who: closer, lport: c, rport: p,
				refused: r.RefusedBytes, reason: "TCP_TIMEWAIT_SOCKET"},
			received(peer, p, c),
		}
	case "linger_zero":
		return []want{
			{row: RowAbort, kind: collector.KindAbortClose, who: closer, lport: c, rport: p, unsent: r.UnsentBytes},
			received(peer, p, c),
		}
	case "graceful":
		return []want{
			{row: RowGraceful, kind: collector.KindGracefulClose, who: closer, lport: c, rport: p},
			{row: RowGraceful, kind: collector.KindGracefulClose, who: peer, lport: p, rport: c},
		}
	case "closed_port":
		return []want{
			{row: RowResetSent, kind: collector.KindResetSent, who: noOwner, lport: p, rport: c, reason: "NO_SOCKET"},
			received(closer, c, p),
		}
	case "peer_reset":
		return []want{
			{row: RowAbort, kind: collector.KindAbortClose, who: closer, lport: c, rport: p},
			received(peer, p, c),
		}
	}
	return nil
}

// owner names the event's owner by its role in the scenario.
func owner(ev *collector.Event, r *scenario.Result) string {
	switch {
	case !ev.OwnerKnown:
		return noOwner
	case int(ev.PID) == r.Closer.PID && ev.Comm == r.Closer.Comm:
		return closer
	case r.Peer.PID != 0 && int(ev.PID) == r.Peer.PID && ev.Comm == r.Peer.Comm:
		return peer
	}
	return fmt.Sprintf("pid %d (%s)", ev.PID, ev.Comm)
}

// wantReason is the reason an event must carry: the kernel's name where it
// names reasons, "unknown" where it cannot tell (before 6.10).
func (w *want) wantReason(reasons bool) string {
	if w.reason == "" {
		return ""
	}
	if !reasons {
		return "unknown"
	}
	return w.reason
}

// mismatch says how ev differs from w, or "" if it matches.
func (w *want) mismatch(ev *collector.Event, r *scenario.Result, reasons bool) string {
	var d []string
	if who := owner(ev, r); who != w.who {
		d = append(d, fmt.Sprintf("owner %s, want %s", nameOwner(who), nameOwner(w.who)))
	}
	if ev.LPort != w.lport || ev.RPort != w.rport {
		d = append(d, fmt.Sprintf("ports %d->%d, want %d->%d", ev.LPort, ev.RPort, w.lport, w.rport))
	}
	if ev.UnreadBytes != w.unread {
		d = append(d, fmt.Sprintf("unread %d, want %d", ev.UnreadBytes, w.unread))
	}
	if ev.UnsentBytes != w.unsent {
		d = append(d, fmt.Sprintf("unsent %d, want %d", ev.UnsentBytes, w.unsent))
	}
	if ev.RefusedBytes != w.refused {
		d = append(d, fmt.Sprintf("refused %d, want %d", ev.RefusedBytes, w.refused))
	}
	if reason := w.wantReason(reasons); reason != "" && ev.Reason != reason {
		d = append(d, fmt.Sprintf("reason %s, want %s", ev.Reason, reason))
	}
	return strings.Join(d, ", ")
}

func nameOwner(who string) string {
	switch who {
	case noOwner:
		return "none"
	case closer:
		return "tct-closer"
	case peer:
		return "tct-peer"
	}
	return who
}

// find returns the index of the event that matches w, or -1.
func (w *want) find(events []collector.Event, r *scenario.Result, reasons bool) int {
	for i := range events {
		if events[i].Kind == w.kind && w.mismatch(&events[i], r, reasons) == "" {
			return i
		}
	}
	return -1
}

// missing says why no event matched w.
func (w *want) missing(events []collector.Event, r *scenario.Result, reasons bool) string {
	for i := range events {
		if events[i].Kind == w.kind {
			return fmt.Sprintf("%s wrong: %s", w.kind, w.mismatch(&events[i], r, reasons))
		}
	}
	return fmt.Sprintf("no %s event (of %s)", w.kind, nameOwner(w.who))
}

// describe is a short form of an event for a report line.
func describe(ev *collector.Event, r *scenario.Result) string {
	return fmt.Sprintf("%s of %s, ports %d->%d", ev.Kind, nameOwner(owner(ev, r)), ev.LPort, ev.RPort)
}

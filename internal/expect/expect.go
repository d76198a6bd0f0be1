// Package expect owns the events each close scenario (internal/scenario)
// must produce, exactly and nothing more, on the running kernel, and the
// helpers that match streamed events against them. The self-test and the
// end-to-end suite both judge the tracer by this one table.
package expect

import (
	"fmt"
	"strings"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// Detections an expected event proves: the self-test's rows.
const (
	RowUnread        = "unread_close"
	RowUndrained     = "undrained_close"
	RowAfterFinWait  = "data_after_close (FIN_WAIT2 orphan)"
	RowAfterTimeWait = "data_after_close (TIME_WAIT)"
	RowAfterFinWait1 = "data_after_close (FIN_WAIT1)"
	RowAbort         = "abort_close"
	RowResetReceived = "reset_received"
	RowResetSent     = "reset_sent (no socket)"
	RowListener      = "reset_sent (listener)"
	RowNoStorage     = "close without socket storage"
	RowGraceful      = "graceful_close"
	RowHandoff       = "owner of a handed-over socket"
	RowThread        = "process of a thread's close"
)

// Role names an event's owner by its part in the scenario. An owner that is
// neither helper is named by pid and command.
type Role string

// Roles.
const (
	Closer Role = "closer" // the helper that closed badly (tct-closer)
	Peer   Role = "peer"   // the other end (tct-peer)
	None   Role = ""       // the event has no owner
)

// Event is one event a scenario must produce, in the fields that must match
// exactly, and the detection it proves.
type Event struct {
	Row     string // the detection; not compared
	Kind    collector.Kind
	Owner   Role
	LPort   uint16
	RPort   uint16
	Unread  uint32
	Unsent  uint32
	Refused uint32
	// Listener: a reset sent by a listening socket.
	Listener bool
	// NoStorage: the socket had no storage (the event says its details
	// may be missing).
	NoStorage bool
	// Worker: the owner acted on its thread scenario.WorkerThread, not on
	// its main thread (the event's comm still names the process).
	Worker bool
	// Reason is as the kernel reports it (see Kernel.Reason); "" for the
	// kinds that carry none (all but reset_sent and data_after_close).
	Reason string
}

// String shows every compared field; equal strings mean matching events.
func (w Event) String() string {
	return fmt.Sprintf("%s owner=%s lport=%d rport=%d unread=%d unsent=%d refused=%d reason=%s listener=%t no_storage=%t worker=%t",
		w.Kind, w.Owner.display(), w.LPort, w.RPort, w.Unread, w.Unsent, w.Refused, w.Reason, w.Listener, w.NoStorage, w.Worker)
}

// Events lists the events scenario name must produce on kernel k, given
// what the run did; nil for an unknown name.
func Events(k Kernel, name string, r *scenario.Result) []Event {
	if f, ok := scenarioEvents[name]; ok {
		return f(k, r)
	}
	return nil
}

// scenarioEvents holds, for each scenario, the events it must produce.
var scenarioEvents = map[string]func(k Kernel, r *scenario.Result) []Event{
	"unread_close": unreadClose,
	"old_socket":   unreadClose,
	// The orphan is a full socket: the data gets TCPAbortOnData.
	"undrained_fin_wait": func(k Kernel, r *scenario.Result) []Event {
		return undrained(r, RowAfterFinWait, k.Reason("TCP_ABORT_ON_DATA"))
	},
	// The orphan became a TIME_WAIT mini-socket.
	"undrained_time_wait": func(k Kernel, r *scenario.Result) []Event {
		return undrained(r, RowAfterTimeWait, k.Reason("TCP_TIMEWAIT_SOCKET"))
	},
	"linger_zero": func(_ Kernel, r *scenario.Result) []Event {
		return []Event{
			{Row: RowAbort, Kind: collector.KindAbortClose, Owner: Closer, LPort: r.CloserPort, RPort: r.PeerPort, Unsent: r.UnsentBytes},
			peerReceived(r),
		}
	},
	"graceful": func(_ Kernel, r *scenario.Result) []Event {
		c, p := r.CloserPort, r.PeerPort
		return []Event{
			{Row: RowGraceful, Kind: collector.KindGracefulClose, Owner: Closer, LPort: c, RPort: p},
			{Row: RowGraceful, Kind: collector.KindGracefulClose, Owner: Peer, LPort: p, RPort: c},
		}
	},
	"closed_port": func(k Kernel, r *scenario.Result) []Event {
		c, p := r.CloserPort, r.PeerPort
		return []Event{
			{Row: RowResetSent, Kind: collector.KindResetSent, Owner: None, LPort: p, RPort: c, Reason: k.Reason("NO_SOCKET")},
			received(Closer, c, p),
		}
	},
	"peer_reset": func(_ Kernel, r *scenario.Result) []Event {
		return []Event{{Row: RowAbort, Kind: collector.KindAbortClose, Owner: Closer, LPort: r.CloserPort, RPort: r.PeerPort}, peerReceived(r)}
	},
	// The accepted socket's reset belongs to its first user, not to the
	// listener's owner (the peer).
	"handoff": func(_ Kernel, r *scenario.Result) []Event {
		c, p := r.CloserPort, r.PeerPort
		return []Event{
			{Row: RowAbort, Kind: collector.KindAbortClose, Owner: Closer, LPort: c, RPort: p},
			{Row: RowHandoff, Kind: collector.KindResetReceived, Owner: Closer, LPort: p, RPort: c},
		}
	},
	// The data that acks the orphan's FIN is refused in FIN_WAIT1:
	// tcp_done, no tcp_reset, TCPAbortOnData. Segments still in flight that
	// reach the listener are answered by it.
	"upload_refused": func(k Kernel, r *scenario.Result) []Event {
		return append(undrained(r, RowAfterFinWait1, k.Reason("TCP_ABORT_ON_DATA")), listenerResets(k, r)...)
	},
	// The FIN queued by shutdown() is no unsent data. Its ACK, where it
	// arrives after the abort, is answered by the listener.
	"shutdown_unread": func(k Kernel, r *scenario.Result) []Event {
		return append(unreadClose(k, r), listenerResets(k, r)...)
	},
	// The listener answers the peer's segment; its owner is the closer.
	"half_open": func(k Kernel, r *scenario.Result) []Event {
		return []Event{listenerReset(k, r), peerReceived(r)}
	},
	// No socket has storage: the close is counted with its owner (the
	// closing task), the peer's reset without one, unless kprobes record
	// the users of sockets in a map, which storage cannot refuse.
	"no_storage": func(k Kernel, r *scenario.Result) []Event {
		c, p := r.CloserPort, r.PeerPort
		peer := None
		if k.UsersProbed {
			peer = Peer
		}
		return []Event{
			{Row: RowNoStorage, Kind: collector.KindUnreadClose, Owner: Closer, LPort: c, RPort: p,
				Unread: r.UnreadBytes, NoStorage: true},
			{Row: RowNoStorage, Kind: collector.KindResetReceived, Owner: peer, LPort: p, RPort: c, NoStorage: true},
		}
	},
	"worker_thread": func(_ Kernel, r *scenario.Result) []Event {
		return []Event{
			{Row: RowThread, Kind: collector.KindUnreadClose, Owner: Closer, LPort: r.CloserPort, RPort: r.PeerPort,
				Unread: r.UnreadBytes, Worker: true},
			peerReceived(r),
		}
	},
}

// received is the reset received by who on its socket (lport, rport).
func received(who Role, lport, rport uint16) Event {
	return Event{Row: RowResetReceived, Kind: collector.KindResetReceived, Owner: who, LPort: lport, RPort: rport}
}

// peerReceived is the reset the peer receives from the closer.
func peerReceived(r *scenario.Result) Event { return received(Peer, r.PeerPort, r.CloserPort) }

// unreadClose: the closer's close with unread data, and the peer's reset.
func unreadClose(_ Kernel, r *scenario.Result) []Event {
	return []Event{
		{Row: RowUnread, Kind: collector.KindUnreadClose, Owner: Closer, LPort: r.CloserPort, RPort: r.PeerPort, Unread: r.UnreadBytes},
		peerReceived(r),
	}
}

// undrained: close() before the peer's EOF, then the peer's data refused.
func undrained(r *scenario.Result, row, reason string) []Event {
	return []Event{
		{Row: RowUndrained, Kind: collector.KindUndrainedClose, Owner: Closer, LPort: r.CloserPort, RPort: r.PeerPort},
		{Row: row, Kind: collector.KindDataAfterClose, Owner: Closer, LPort: r.CloserPort, RPort: r.PeerPort,
			Refused: r.RefusedBytes, Reason: reason},
		peerReceived(r),
	}
}

// listenerReset is a reset the closer's listener sends for a segment of a
// connection it does not have.
func listenerReset(k Kernel, r *scenario.Result) Event {
	return Event{Row: RowListener, Kind: collector.KindResetSent, Owner: Closer, LPort: r.CloserPort, RPort: r.PeerPort,
		Reason: k.Reason("TCP_FLAGS"), Listener: true}
}

// listenerResets are the run's listener resets (r.ListenerResets).
func listenerResets(k Kernel, r *scenario.Result) []Event {
	var ws []Event
	for range r.ListenerResets {
		ws = append(ws, listenerReset(k, r))
	}
	return ws
}

// Rows lists the detections scenario name proves, in the table's order:
// the rows a scenario that cannot run fails.
func Rows(name string) []string {
	var rows []string
	for _, w := range Events(Kernel{}, name, &scenario.Result{}) {
		if len(rows) == 0 || rows[len(rows)-1] != w.Row {
			rows = append(rows, w.Row)
		}
	}
	return rows
}

// RowOf is the detection an event of scenario name counts against, "" for
// a kind no scenario expects.
func RowOf(name string, ev *collector.Event) string {
	if name == "no_storage" && ev.NoStorage {
		return RowNoStorage
	}
	if name == "worker_thread" && ev.Kind == collector.KindUnreadClose {
		return RowThread
	}
	switch ev.Kind {
	case collector.KindUnreadClose:
		return RowUnread
	case collector.KindUndrainedClose:
		return RowUndrained
	case collector.KindDataAfterClose:
		if ev.TimeWait {
			return RowAfterTimeWait
		}
		if name == "upload_refused" {
			return RowAfterFinWait1
		}
		return RowAfterFinWait
	case collector.KindAbortClose:
		return RowAbort
	case collector.KindResetReceived:
		if name == "handoff" {
			return RowHandoff
		}
		return RowResetReceived
	case collector.KindResetSent:
		if ev.Listener {
			return RowListener
		}
		return RowResetSent
	case collector.KindGracefulClose:
		return RowGraceful
	}
	return ""
}

// OwnerOf names the event's owner by its role in run r.
func OwnerOf(ev *collector.Event, r *scenario.Result) Role {
	switch {
	case !ev.OwnerKnown:
		return None
	case int(ev.PID) == r.Closer.PID && ev.Comm == r.Closer.Comm:
		return Closer
	case r.Peer.PID != 0 && int(ev.PID) == r.Peer.PID && ev.Comm == r.Peer.Comm:
		return Peer
	}
	return Role(fmt.Sprintf("pid %d (%s)", ev.PID, output.Printable(ev.Comm))) // printed in reports
}

// Observed reduces a streamed event to the table's form, its owner named by
// role in run r and its row by RowOf.
func Observed(ev *collector.Event, r *scenario.Result) Event {
	w := Event{Row: RowOf(r.Name, ev), Kind: ev.Kind, Owner: OwnerOf(ev, r), LPort: ev.LPort, RPort: ev.RPort,
		Unread: ev.UnreadBytes, Unsent: ev.UnsentBytes, Refused: ev.RefusedBytes,
		Listener: ev.Listener, NoStorage: ev.NoStorage,
		Worker: ev.OwnerKnown && ev.TID != ev.PID && ev.Thread == scenario.WorkerThread}
	if ev.Kind == collector.KindResetSent || ev.Kind == collector.KindDataAfterClose {
		w.Reason = ev.Reason // reasons belong to resets sent
	}
	return w
}

// Mismatch says how ev differs from w apart from its kind, or "" if it
// matches.
func (w Event) Mismatch(ev *collector.Event, r *scenario.Result) string {
	got := Observed(ev, r)
	checks := []struct {
		differ bool
		how    string
	}{
		{got.Owner != w.Owner, fmt.Sprintf("owner %s, want %s", got.Owner.display(), w.Owner.display())},
		{got.LPort != w.LPort || got.RPort != w.RPort, fmt.Sprintf("ports %d->%d, want %d->%d", got.LPort, got.RPort, w.LPort, w.RPort)},
		{got.Unread != w.Unread, fmt.Sprintf("unread %d, want %d", got.Unread, w.Unread)},
		{got.Unsent != w.Unsent, fmt.Sprintf("unsent %d, want %d", got.Unsent, w.Unsent)},
		{got.Refused != w.Refused, fmt.Sprintf("refused %d, want %d", got.Refused, w.Refused)},
		{got.Reason != w.Reason, fmt.Sprintf("reason %s, want %s", got.Reason, w.Reason)},
		{got.Listener != w.Listener, fmt.Sprintf("listener %t, want %t", got.Listener, w.Listener)},
		{got.NoStorage != w.NoStorage, fmt.Sprintf("no_storage %t, want %t", got.NoStorage, w.NoStorage)},
		{got.Worker != w.Worker, fmt.Sprintf("thread %q (tid %d of pid %d), want worker %t", output.Printable(ev.Thread), ev.TID, ev.PID, w.Worker)},
	}
	var d []string
	for _, c := range checks {
		if c.differ {
			d = append(d, c.how)
		}
	}
	return strings.Join(d, ", ")
}

// Find returns the index of the first event that matches w, or -1.
func (w Event) Find(events []collector.Event, r *scenario.Result) int {
	for i := range events {
		got := Observed(&events[i], r)
		got.Row = w.Row // not compared
		if got == w {
			return i
		}
	}
	return -1
}

// Missing says why no event matched w: how the first event of its kind
// differs, or that there was none.
func (w Event) Missing(events []collector.Event, r *scenario.Result) string {
	for i := range events {
		if events[i].Kind == w.Kind {
			return fmt.Sprintf("%s wrong: %s", w.Kind, w.Mismatch(&events[i], r))
		}
	}
	return fmt.Sprintf("no %s event (of %s)", w.Kind, w.Owner.display())
}

// Describe is a short form of an event for a report line.
func Describe(ev *collector.Event, r *scenario.Result) string {
	return fmt.Sprintf("%s of %s, ports %d->%d", ev.Kind, OwnerOf(ev, r).display(), ev.LPort, ev.RPort)
}

// display names a role as a user sees it: the helper's command name.
func (o Role) display() string {
	switch o {
	case None:
		return "none"
	case Closer:
		return "tct-closer"
	case Peer:
		return "tct-peer"
	}
	return string(o)
}

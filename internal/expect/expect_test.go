package expect

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// run is a scenario run as Result reports it: the helpers and their ports.
var run = &scenario.Result{Closer: scenario.Proc{PID: 10, Comm: "tct-closer"}, Peer: scenario.Proc{PID: 11, Comm: "tct-peer"},
	CloserPort: 1000, PeerPort: 2000, UnreadBytes: 1234, UnsentBytes: 777, RefusedBytes: 100}

// streamed is the event the tracer streams for w when it works: the owner
// by pid and command, the reason as the kernel names it, TimeWait where the
// row says so.
func streamed(w Event, r *scenario.Result, reason string) collector.Event {
	ev := collector.Event{Kind: w.Kind, LPort: w.LPort, RPort: w.RPort, UnreadBytes: w.Unread,
		UnsentBytes: w.Unsent, RefusedBytes: w.Refused, Reason: reason, TimeWait: w.Row == RowAfterTimeWait,
		Listener: w.Listener, NoStorage: w.NoStorage}
	switch w.Owner {
	case Closer:
		ev.OwnerKnown, ev.PID, ev.Comm = true, uint32(r.Closer.PID), r.Closer.Comm
	case Peer:
		ev.OwnerKnown, ev.PID, ev.Comm = true, uint32(r.Peer.PID), r.Peer.Comm
	}
	ev.TID, ev.Thread = ev.PID, ev.Comm
	if w.Worker {
		ev.TID, ev.Thread = ev.PID+1, scenario.WorkerThread
	}
	return ev
}

// TestEvents pins the reasons each kernel generation must report: names
// from 6.10 on, "unknown" before; the rest of the table does not depend on
// the kernel.
func TestEvents(t *testing.T) {
	reasons := func(ws []Event) map[collector.Kind]string {
		m := map[collector.Kind]string{}
		for _, w := range ws {
			if w.Reason != "" {
				m[w.Kind] = w.Reason
			}
		}
		return m
	}
	tests := []struct {
		scenario string
		kernel   Kernel
		want     map[collector.Kind]string
	}{
		{"undrained_fin_wait", linux612, map[collector.Kind]string{collector.KindDataAfterClose: "TCP_ABORT_ON_DATA"}},
		{"undrained_fin_wait", linux611, map[collector.Kind]string{collector.KindDataAfterClose: "TCP_ABORT_ON_DATA"}},
		{"undrained_fin_wait", linux61, map[collector.Kind]string{collector.KindDataAfterClose: "unknown"}},
		{"undrained_time_wait", linux612, map[collector.Kind]string{collector.KindDataAfterClose: "TCP_TIMEWAIT_SOCKET"}},
		{"undrained_time_wait", linux61, map[collector.Kind]string{collector.KindDataAfterClose: "unknown"}},
		{"closed_port", linux612, map[collector.Kind]string{collector.KindResetSent: "NO_SOCKET"}},
		{"closed_port", linux61, map[collector.Kind]string{collector.KindResetSent: "unknown"}},
		{"unread_close", linux61, map[collector.Kind]string{}},
		{"linger_zero", linux612, map[collector.Kind]string{}},
		{"graceful", linux612, map[collector.Kind]string{}},
		{"peer_reset", linux61, map[collector.Kind]string{}},
		{"upload_refused", linux612, map[collector.Kind]string{collector.KindDataAfterClose: "TCP_ABORT_ON_DATA"}},
		{"upload_refused", linux61, map[collector.Kind]string{collector.KindDataAfterClose: "unknown"}},
		{"half_open", linux612, map[collector.Kind]string{collector.KindResetSent: "TCP_FLAGS"}},
		{"half_open", linux61, map[collector.Kind]string{collector.KindResetSent: "unknown"}},
		{"shutdown_unread", linux612, map[collector.Kind]string{}},
		{"no_storage", linux612, map[collector.Kind]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.scenario+"/"+tt.kernel.String(), func(t *testing.T) {
			ws := Events(tt.kernel, tt.scenario, run)
			if got := reasons(ws); !maps.Equal(got, tt.want) {
				t.Errorf("reasons = %v, want %v", got, tt.want)
			}
			// Apart from the reasons, every kernel expects the same.
			newest := Events(linux612, tt.scenario, run)
			for i := range ws {
				ws[i].Reason, newest[i].Reason = "", ""
			}
			if !slices.Equal(ws, newest) {
				t.Errorf("events differ from 6.12's beyond reasons:\n  %v\n  %v", ws, newest)
			}
		})
	}
	for _, name := range scenario.Names() {
		if len(Events(linux61, name, run)) == 0 {
			t.Errorf("scenario %s has no expected events", name)
		}
	}
	if ws := Events(linux612, "mixed", run); ws != nil {
		t.Errorf("unknown scenario: %v, want nil", ws)
	}
}

// TestWholeRun feeds each scenario's events as a working tracer streams
// them on each kernel and as one on the wrong kernel would: every expected
// event must be found exactly once, or the reason must be named.
func TestWholeRun(t *testing.T) {
	tests := []struct {
		name     string
		expected Kernel // the kernel the table is built for
		streams  Kernel // the kernel whose reasons the events carry
		wantMiss []string
	}{
		{name: "6.12 events on 6.12", expected: linux612, streams: linux612},
		{name: "6.11 events on 6.11", expected: linux611, streams: linux611},
		{name: "6.1 events on 6.1", expected: linux61, streams: linux61},
		{name: "6.1 events judged as 6.12", expected: linux612, streams: linux61, wantMiss: []string{
			"undrained_fin_wait: data_after_close wrong: reason unknown, want TCP_ABORT_ON_DATA",
			"undrained_time_wait: data_after_close wrong: reason unknown, want TCP_TIMEWAIT_SOCKET",
			"closed_port: reset_sent wrong: reason unknown, want NO_SOCKET",
			"upload_refused: data_after_close wrong: reason unknown, want TCP_ABORT_ON_DATA",
			"half_open: reset_sent wrong: reason unknown, want TCP_FLAGS",
		}},
		{name: "6.12 events judged as 6.1", expected: linux61, streams: linux612, wantMiss: []string{
			"undrained_fin_wait: data_after_close wrong: reason TCP_ABORT_ON_DATA, want unknown",
			"undrained_time_wait: data_after_close wrong: reason TCP_TIMEWAIT_SOCKET, want unknown",
			"closed_port: reset_sent wrong: reason NO_SOCKET, want unknown",
			"upload_refused: data_after_close wrong: reason TCP_ABORT_ON_DATA, want unknown",
			"half_open: reset_sent wrong: reason TCP_FLAGS, want unknown",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var miss []string
			for _, name := range scenario.Names() {
				var events []collector.Event
				for _, w := range Events(tt.streams, name, run) {
					events = append(events, streamed(w, run, w.Reason))
				}
				missed := 0
				for _, w := range Events(tt.expected, name, run) {
					i := w.Find(events, run)
					if i < 0 {
						miss = append(miss, name+": "+w.Missing(events, run))
						missed++
						continue
					}
					events = slices.Delete(events, i, i+1)
				}
				if len(events) != missed {
					t.Errorf("%s: %d events left unmatched, %d expected ones missed", name, len(events), missed)
				}
			}
			if !slices.Equal(miss, tt.wantMiss) {
				t.Errorf("missing:\n  %s\nwant:\n  %s", strings.Join(miss, "\n  "), strings.Join(tt.wantMiss, "\n  "))
			}
		})
	}
}

func TestMismatch(t *testing.T) {
	tests := []struct {
		name   string
		kernel Kernel
		ev     func(*collector.Event)
		want   string
	}{
		{name: "exact", kernel: linux612, ev: func(*collector.Event) {}},
		{name: "6.1: unknown", kernel: linux61, ev: func(e *collector.Event) { e.Reason = "unknown" }},
		{name: "6.1 but a name", kernel: linux61, ev: func(*collector.Event) {},
			want: "reason TCP_TIMEWAIT_SOCKET, want unknown"},
		{name: "6.12 but unknown", kernel: linux612, ev: func(e *collector.Event) { e.Reason = "unknown" },
			want: "reason unknown, want TCP_TIMEWAIT_SOCKET"},
		{name: "softirq pid", kernel: linux612, ev: func(e *collector.Event) { e.PID, e.Comm = 11, "tct-peer" },
			want: "owner tct-peer, want tct-closer"},
		{name: "a stranger", kernel: linux612, ev: func(e *collector.Event) { e.PID, e.Comm = 7, "ksoftirqd/0" },
			want: "owner pid 7 (ksoftirqd/0), want tct-closer"},
		{name: "same pid, other comm", kernel: linux612, ev: func(e *collector.Event) { e.Comm = "sh" },
			want: "owner pid 10 (sh), want tct-closer"},
		{name: "no owner", kernel: linux612, ev: func(e *collector.Event) { e.OwnerKnown = false },
			want: "owner none, want tct-closer"},
		{name: "ports", kernel: linux612, ev: func(e *collector.Event) { e.LPort, e.RPort = e.RPort, e.LPort },
			want: "ports 2000->1000, want 1000->2000"},
		{name: "bytes", kernel: linux612, ev: func(e *collector.Event) { e.RefusedBytes, e.UnreadBytes, e.UnsentBytes = 52, 1, 2 },
			want: "unread 1, want 0, unsent 2, want 0, refused 52, want 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := Events(tt.kernel, "undrained_time_wait", run)[1]
			if w.Row != RowAfterTimeWait {
				t.Fatalf("second event proves %s", w.Row)
			}
			ev := streamed(w, run, "TCP_TIMEWAIT_SOCKET")
			tt.ev(&ev)
			if got := w.Mismatch(&ev, run); got != tt.want {
				t.Errorf("Mismatch = %q, want %q", got, tt.want)
			}
			if found := w.Find([]collector.Event{ev}, run) == 0; found != (tt.want == "") {
				t.Errorf("Find = %v, want %v", found, tt.want == "")
			}
		})
	}
}

// TestReasonOnlyWhereCarried: events of kinds without a reason match
// whatever their Reason field holds, as the decoder sets none for them.
func TestReasonOnlyWhereCarried(t *testing.T) {
	w := Events(linux612, "unread_close", run)[0]
	ev := streamed(w, run, "TCP_ABORT_ON_CLOSE")
	if got := w.Mismatch(&ev, run); got != "" {
		t.Errorf("Mismatch = %q, want none", got)
	}
	if got := Observed(&ev, run).Reason; got != "" {
		t.Errorf("Observed reason of an unread_close = %q, want none", got)
	}
}

func TestMissingAndDescribe(t *testing.T) {
	w := Events(linux612, "undrained_time_wait", run)[1]
	if got := w.Missing(nil, run); got != "no data_after_close event (of tct-closer)" {
		t.Errorf("Missing(nil) = %q", got)
	}
	other := collector.Event{Kind: collector.KindUndrainedClose}
	wrong := streamed(w, run, "TCP_TIMEWAIT_SOCKET")
	wrong.RefusedBytes = 99
	if got := w.Missing([]collector.Event{other, wrong}, run); got != "data_after_close wrong: refused 99, want 100" {
		t.Errorf("Missing = %q", got)
	}
	sent := Events(linux612, "closed_port", run)[0]
	ev := streamed(sent, run, "NO_SOCKET")
	if got := Describe(&ev, run); got != "reset_sent of none, ports 2000->1000" {
		t.Errorf("Describe = %q", got)
	}
	if got := Observed(&ev, run).String(); got != "reset_sent owner=none lport=2000 rport=1000 unread=0 unsent=0 refused=0 reason=NO_SOCKET listener=false no_storage=false worker=false" {
		t.Errorf("String = %q", got)
	}
}

// TestListenerResets: each segment of upload_refused's that the listener
// answered adds one listener reset_sent.
func TestListenerResets(t *testing.T) {
	r := *run
	r.ListenerResets = 2
	n := 0
	for _, w := range Events(linux612, "upload_refused", &r) {
		if w.Kind == collector.KindResetSent && w.Listener && w.Row == RowListener && w.Reason == "TCP_FLAGS" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d listener resets, want 2", n)
	}
}

func TestRows(t *testing.T) {
	tests := []struct {
		scenario string
		want     []string
	}{
		{"unread_close", []string{RowUnread, RowResetReceived}},
		{"undrained_fin_wait", []string{RowUndrained, RowAfterFinWait, RowResetReceived}},
		{"undrained_time_wait", []string{RowUndrained, RowAfterTimeWait, RowResetReceived}},
		{"linger_zero", []string{RowAbort, RowResetReceived}},
		{"graceful", []string{RowGraceful}},
		{"closed_port", []string{RowResetSent, RowResetReceived}},
		{"peer_reset", []string{RowAbort, RowResetReceived}},
		{"upload_refused", []string{RowUndrained, RowAfterFinWait1, RowResetReceived}},
		{"shutdown_unread", []string{RowUnread, RowResetReceived}},
		{"half_open", []string{RowListener, RowResetReceived}},
		{"no_storage", []string{RowNoStorage}},
		{"no such scenario", nil},
	}
	for _, tt := range tests {
		if got := Rows(tt.scenario); !slices.Equal(got, tt.want) {
			t.Errorf("Rows(%s) = %q, want %q", tt.scenario, got, tt.want)
		}
	}
}

// TestRowOf: an event of each expected event's kind counts against that
// event's row, so an unexpected one is reported where its detection is.
func TestRowOf(t *testing.T) {
	for _, name := range scenario.Names() {
		for _, w := range Events(linux612, name, run) {
			ev := streamed(w, run, w.Reason)
			if got := RowOf(name, &ev); got != w.Row {
				t.Errorf("%s: RowOf(%s) = %q, want %q", name, w.Kind, got, w.Row)
			}
		}
	}
	if got := RowOf("unread_close", &collector.Event{Kind: collector.KindNone}); got != "" {
		t.Errorf("RowOf(none) = %q, want none", got)
	}
}

// TestNoStorageOwners: without socket storage the peer's reset has no
// owner, unless kprobes record the users of sockets in a map.
func TestNoStorageOwners(t *testing.T) {
	probed := linux612
	probed.UsersProbed = true
	tests := []struct {
		kernel Kernel
		want   Role
	}{
		{linux612, None},
		{linux61, None},
		{probed, Peer},
	}
	for _, tt := range tests {
		t.Run(tt.kernel.String(), func(t *testing.T) {
			ws := Events(tt.kernel, "no_storage", run)
			if len(ws) != 2 || ws[1].Kind != collector.KindResetReceived {
				t.Fatalf("events %v, want an unread_close and a reset_received", ws)
			}
			if ws[1].Owner != tt.want || ws[0].Owner != Closer {
				t.Errorf("owners %q, %q; want %q, %q", ws[0].Owner, ws[1].Owner, Closer, tt.want)
			}
		})
	}
}

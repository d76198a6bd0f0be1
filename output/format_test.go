package output

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

var at = time.Date(2026, 11, 21, 10, 30, 0, 123456789, time.UTC)

func unreadEvent() collector.Event {
	return collector.Event{Time: at, Kind: collector.KindUnreadClose, PID: 4242, TID: 4242, Comm: "server", Thread: "server",
		CgroupID: 99, Netns: 4026531840, LAddr: netip.MustParseAddr("127.0.0.1"), LPort: 8080,
		RAddr: netip.MustParseAddr("127.0.0.1"), RPort: 50000, Cookie: 7, State: 1,
		UnreadBytes: 1234, OwnerKnown: true}
}

func TestDetail(t *testing.T) {
	tests := []struct {
		name string
		ev   collector.Event
		want string
	}{
		{"unread", unreadEvent(), "unread=1234 state=ESTABLISHED"},
		{"closed by a worker thread", collector.Event{Kind: collector.KindUnreadClose, UnreadBytes: 5, State: 1,
			PID: 4242, TID: 4250, Comm: "java", Thread: "http-nio-8080-e", OwnerKnown: true},
			"unread=5 state=ESTABLISHED thread=http-nio-8080-e tid=4250"},
		{"thread of an unknown owner", collector.Event{Kind: collector.KindUnreadClose, UnreadBytes: 5, State: 1,
			PID: 4242, TID: 4250, Thread: "stale"}, "unread=5 state=ESTABLISHED"},
		{"hostile thread name", collector.Event{Kind: collector.KindAbortClose, State: 1,
			PID: 1, TID: 2, Comm: "p", Thread: "\x1b[2J\n", OwnerKnown: true},
			`unsent=0 state=ESTABLISHED thread="\x1b[2J\n" tid=2`},
		{"unread with unsent", collector.Event{Kind: collector.KindUnreadClose, UnreadBytes: 5, UnsentBytes: 6, State: 8},
			"unread=5 unsent=6 state=CLOSE_WAIT"},
		{"abort", collector.Event{Kind: collector.KindAbortClose, UnsentBytes: 300, State: 1}, "unsent=300 state=ESTABLISHED"},
		{"data after close", collector.Event{Kind: collector.KindDataAfterClose, RefusedBytes: 100, State: 5,
			Reason: "TCP_ABORT_ON_DATA", SinceClose: 1500 * time.Microsecond},
			"refused=100 after_close=1.5ms state=FIN_WAIT2 reason=TCP_ABORT_ON_DATA"},
		{"undrained after shutdown", collector.Event{Kind: collector.KindUndrainedClose, State: 5, ShutWR: true},
			"state=FIN_WAIT2 after=shutdown(SHUT_WR)"},
		{"reset sent without socket", collector.Event{Kind: collector.KindResetSent, Reason: "NO_SOCKET"}, "reason=NO_SOCKET"},
		{"in a pod", collector.Event{Kind: collector.KindUnreadClose, UnreadBytes: 9, State: 1,
			Pod: &collector.PodInfo{Namespace: "shop", Name: "web-0", UID: "u", Container: "nginx", ContainerID: "c"}},
			"unread=9 state=ESTABLISHED pod=shop/web-0 container=nginx"},
		{"in a pod, sandbox", collector.Event{Kind: collector.KindUndrainedClose, State: 1,
			Pod: &collector.PodInfo{Namespace: "shop", Name: "web-0"}}, "state=ESTABLISHED pod=shop/web-0"},
		{"in a pod, names unknown", collector.Event{Kind: collector.KindAbortClose, State: 1,
			Pod: &collector.PodInfo{UID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}},
			"unsent=0 state=ESTABLISHED pod=uid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"},
		{"in a pod, no namespace", collector.Event{Kind: collector.KindUndrainedClose, State: 1,
			Pod: &collector.PodInfo{Name: "web-0", Container: "app"}}, "state=ESTABLISHED pod=web-0 container=app"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Detail(&tt.ev); got != tt.want {
				t.Errorf("Detail() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTableHintsOncePerKind(t *testing.T) {
	var buf bytes.Buffer
	tab := NewTable(&buf)
	tab.location = time.UTC
	ev := unreadEvent()
	for range 2 {
		if err := tab.Write(&ev); err != nil {
			t.Fatal(err)
		}
	}
	graceful := collector.Event{Time: at, Kind: collector.KindGracefulClose, LAddr: netip.MustParseAddr("::1"), LPort: 1}
	if err := tab.Write(&graceful); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("table wrote %d bytes before Flush", buf.Len())
	}
	if err := tab.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want header + 2 events + 1 hint + 1 graceful:\n%s", len(lines), buf.String())
	}
	if !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "KIND") {
		t.Errorf("header = %q", lines[0])
	}
	wantEvent := "10:30:00.123    4242 server          127.0.0.1:8080"
	if !strings.HasPrefix(lines[1], wantEvent) || !strings.Contains(lines[1], "unread_close") {
		t.Errorf("event line = %q, want prefix %q", lines[1], wantEvent)
	}
	if !strings.HasPrefix(lines[2], "  hint(unread_close): ") {
		t.Errorf("hint line = %q", lines[2])
	}
	if strings.Contains(lines[4], "hint") || !strings.Contains(lines[4], "[::1]:1") || !strings.Contains(lines[4], "      - -") {
		t.Errorf("graceful line = %q", lines[4])
	}
	// Columns line up: KIND starts at the same offset in header and events.
	if strings.Index(lines[0], "KIND") != strings.Index(lines[1], "unread_close") {
		t.Errorf("KIND column misaligned:\n%s\n%s", lines[0], lines[1])
	}
}

func TestHintsForEveryAnomaly(t *testing.T) {
	for _, k := range collector.Kinds() {
		if k.Anomaly() && Hint(k) == "" {
			t.Errorf("no hint for %s", k)
		}
	}
}

func TestJSONSchema(t *testing.T) {
	var buf bytes.Buffer
	ev := unreadEvent()
	j := NewJSON(&buf)
	if err := j.Write(&ev); err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	if strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("not one line: %q", buf.String())
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"time": "2026-11-21T10:30:00.123456789Z", "kind": "unread_close", "pid": 4242.0, "tid": 4242.0,
		"comm": "server", "thread": "server", "netns": 4026531840.0, "cgroup_id": 99.0, "family": "ipv4", "laddr": "127.0.0.1",
		"lport": 8080.0, "raddr": "127.0.0.1", "rport": 50000.0, "cookie": 7.0, "state": "ESTABLISHED",
		"reason": "", "unread_bytes": 1234.0, "unsent_bytes": 0.0, "refused_bytes": 0.0,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %s (omitempty fields should be absent here)", k)
		}
	}
}

func TestJSONPodFields(t *testing.T) {
	ev := unreadEvent()
	ev.Pod = &collector.PodInfo{Namespace: "shop", Name: "web-0", UID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
		Container: "nginx", ContainerID: "8d5c"}
	var buf bytes.Buffer
	j := NewJSON(&buf)
	if err := j.Write(&ev); err != nil {
		t.Fatal(err)
	}
	if err := j.Flush(); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"namespace": "shop", "pod": "web-0", "pod_uid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
		"container": "nginx", "container_id": "8d5c", "comm": "server", "pid": 4242.0}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
}

func TestSummary(t *testing.T) {
	s := NewSummary()
	ev := unreadEvent()
	s.Add(&ev)
	s.Add(&ev)
	anon := collector.Event{Kind: collector.KindResetSent}
	s.Add(&anon)
	var c collector.Counters
	c.Kinds[collector.KindUnreadClose] = 2
	c.ResetReasons[1] = 3
	c.RingLost = 4
	s.NotShown = 7
	var buf bytes.Buffer
	if err := s.Write(&buf, c, collector.Stats{SinkDropped: 5, Evictions: 6, SkippedRuns: 8}, collector.NewReasons(map[uint16]string{1: "NO_SOCKET"})); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"4242  server  unread_close", "-     -       reset_sent", "resets sent, NO_SOCKET",
		"ring records lost", "4\n", "events dropped (slow output)        5", "correlation entries evicted         6",
		"events not shown (--kinds, --all)   7", "program runs skipped by the kernel  8"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

// TestSummaryCountsExactly: the recent-key cache loses no count, whatever the
// order and number of distinct (process, kind) pairs.
func TestSummaryCountsExactly(t *testing.T) {
	s := NewSummary()
	want := map[summaryKey]uint64{}
	for i := range 10000 {
		ev := collector.Event{Kind: collector.Kind(1 + i%3), PID: uint32(i % 7), Comm: "c", OwnerKnown: i%11 != 0}
		if i%100 < 50 {
			ev.PID = 1 // long runs of one key
		}
		s.Add(&ev)
		k := summaryKey{kind: ev.Kind, comm: "-"}
		if ev.OwnerKnown {
			k.pid, k.comm = ev.PID, ev.Comm
		}
		want[k]++
	}
	s.settle()
	if len(s.counts) != len(want) {
		t.Fatalf("%d keys, want %d", len(s.counts), len(want))
	}
	for k, n := range want {
		if s.counts[k] != n {
			t.Errorf("%+v: %d, want %d", k, s.counts[k], n)
		}
	}
}

package output

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

func TestLogRecords(t *testing.T) {
	ev := collector.Event{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Kind: collector.KindUnreadClose,
		PID: 42, TID: 43, Comm: "nginx", OwnerKnown: true, LAddr: netip.MustParseAddr("10.0.0.1"), LPort: 80,
		RAddr: netip.MustParseAddr("10.0.0.2"), RPort: 5555, UnreadBytes: 1234, State: 8}
	graceful := ev
	graceful.Kind = collector.KindGracefulClose
	reset, undrained, dac := ev, ev, ev
	reset.Kind, undrained.Kind, dac.Kind = collector.KindResetSent, collector.KindUndrainedClose, collector.KindDataAfterClose
	inPod := ev
	inPod.Pod = &collector.PodInfo{Namespace: "shop", Name: "web-0", UID: "u-1", Container: "nginx", ContainerID: "c1"}
	tests := []struct {
		name      string
		ev        collector.Event
		level     slog.Level
		wantLines int
		want      map[string]any
	}{
		{"anomaly at warn", ev, slog.LevelInfo, 1, map[string]any{"level": "WARN", "kind": "unread_close",
			"pid": 42.0, "comm": "nginx", "unread_bytes": 1234.0, "laddr": "10.0.0.1", "rport": 5555.0,
			"state": "CLOSE_WAIT", "event_time": "2026-01-02T03:04:05Z", "msg": logMessages[collector.KindUnreadClose],
			"hint": Hint(collector.KindUnreadClose)}},
		{"pod fields", inPod, slog.LevelInfo, 1, map[string]any{"namespace": "shop", "pod": "web-0",
			"pod_uid": "u-1", "container": "nginx", "container_id": "c1", "comm": "nginx"}},
		{"graceful at info", graceful, slog.LevelInfo, 1, map[string]any{"level": "INFO", "kind": "graceful_close"}},
		{"graceful filtered by level", graceful, slog.LevelWarn, 0, nil},
		{"data after close at warn", dac, slog.LevelWarn, 1, map[string]any{"level": "WARN", "kind": "data_after_close"}},
		{"reset at info", reset, slog.LevelInfo, 1, map[string]any{"level": "INFO", "kind": "reset_sent"}},
		{"reset filtered by level", reset, slog.LevelWarn, 0, nil},
		{"undrained at info", undrained, slog.LevelInfo, 1, map[string]any{"level": "INFO", "kind": "undrained_close"}},
		{"undrained filtered by level", undrained, slog.LevelWarn, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := NewLog(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tt.level})))
			if err := l.Write(&tt.ev); err != nil {
				t.Fatal(err)
			}
			lines := bytes.Count(buf.Bytes(), []byte("\n"))
			if lines != tt.wantLines {
				t.Fatalf("%d lines, want %d: %s", lines, tt.wantLines, buf.String())
			}
			if lines == 0 {
				return
			}
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			if tt.ev.Pod == nil {
				for _, k := range []string{"namespace", "pod", "pod_uid", "container", "container_id"} {
					if _, ok := got[k]; ok {
						t.Errorf("%s present outside a pod", k)
					}
				}
			}
		})
	}
}

// TestJSONLogClock: the fast path's log time is read afresh after every
// Flush and at least once per logClockEvery lines, and never goes back.
func TestJSONLogClock(t *testing.T) {
	var out bytes.Buffer
	w := NewLogWriter(&out)
	l := NewJSONLog(slog.New(slog.NewJSONHandler(w, nil)), w)
	ev := collector.Event{Kind: collector.KindUnreadClose}
	times := func() []time.Time {
		t.Helper()
		var ts []time.Time
		for _, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
			var rec struct{ Time time.Time }
			if err := json.Unmarshal(line, &rec); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			ts = append(ts, rec.Time)
		}
		out.Reset()
		return ts
	}
	write := func(n int, pause time.Duration) {
		t.Helper()
		for range n {
			if err := l.Write(&ev); err != nil {
				t.Fatal(err)
			}
			time.Sleep(pause)
		}
	}

	before := time.Now()
	write(2*logClockEvery+1, 50*time.Microsecond)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	ts := times()
	if len(ts) != 2*logClockEvery+1 {
		t.Fatalf("%d lines, want %d", len(ts), 2*logClockEvery+1)
	}
	for i, at := range ts {
		if at.Before(before) || (i > 0 && at.Before(ts[i-1])) {
			t.Fatalf("line %d: time %v before %v or the previous line's", i, at, before)
		}
		same := i%logClockEvery != 0
		if i > 0 && same != at.Equal(ts[i-1]) {
			t.Errorf("line %d: time %v, previous %v: want a new reading every %d lines", i, at, ts[i-1], logClockEvery)
		}
	}

	time.Sleep(2 * time.Millisecond)
	write(1, 0)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	if after := times(); len(after) != 1 || !after[0].After(ts[len(ts)-1]) {
		t.Errorf("the first line after a Flush has time %v, want a fresh reading after %v", after, ts[len(ts)-1])
	}
}

// TestLogLineMatchesSlog: the Log sink's fast path writes the line slog's
// JSON handler writes for the same record and attributes.
func TestLogLineMatchesSlog(t *testing.T) {
	e := &logEncoder{}
	now := time.Date(2026, 11, 21, 16, 35, 51, 770123456, time.Local)
	events := encodingCases()
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		events = append(events, randomEvent(r))
	}
	for i, ev := range events {
		level := logLevel(ev.Kind)
		msg := logMessages[ev.Kind]
		when := now.Add(time.Duration(i) * 333 * time.Microsecond)
		var want bytes.Buffer
		rec := slog.NewRecord(when, level, msg, 0)
		rec.AddAttrs(appendLogAttrs(nil, &ev)...)
		if err := slog.NewJSONHandler(&want, nil).Handle(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		got := e.appendLogLine(nil, when, &ev)
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("event %+v:\nfast: %s\nslog: %s", ev, got, want.Bytes())
		}
	}
}

// TestJSONLogBuffersUntilFlush: event lines wait for Flush; other records
// written through the same writer go out at once, after them.
func TestJSONLogBuffersUntilFlush(t *testing.T) {
	var out bytes.Buffer
	w := NewLogWriter(&out)
	logger := slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l := NewJSONLog(logger, w)
	ev := unreadEvent()
	graceful := ev
	graceful.Kind = collector.KindGracefulClose
	for _, e := range []*collector.Event{&ev, &graceful, &ev} {
		if err := l.Write(e); err != nil {
			t.Fatal(err)
		}
	}
	if out.Len() != 0 {
		t.Fatalf("event lines written before Flush: %s", out.String())
	}
	logger.Warn("other")
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], `"kind":"unread_close"`) || !strings.Contains(lines[2], `"msg":"other"`) {
		t.Fatalf("want 2 unread_close lines (graceful is below the level), then the other record; got:\n%s", out.String())
	}
}

func BenchmarkLogLine(b *testing.B) {
	var out bytes.Buffer
	w := NewLogWriter(&out)
	l := NewJSONLog(slog.New(slog.NewJSONHandler(w, nil)), w)
	ev := unreadEvent()
	b.ReportAllocs()
	for b.Loop() {
		_ = l.Write(&ev)
		out.Reset()
		_ = l.Flush()
	}
}

func BenchmarkSlogLine(b *testing.B) {
	var out bytes.Buffer
	l := NewLog(slog.New(slog.NewJSONHandler(&out, nil)))
	ev := unreadEvent()
	b.ReportAllocs()
	for b.Loop() {
		_ = l.Write(&ev)
		out.Reset()
	}
}

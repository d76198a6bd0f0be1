package exporter

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// fakeSource is a Source with fixed values.
type fakeSource struct {
	counters collector.Counters
	err      error
	stats    collector.Stats
	reasons  *collector.Reasons
	attached int
}

func (f *fakeSource) Counters() (collector.Counters, error) { return f.counters, f.err }
func (f *fakeSource) Stats() collector.Stats                { return f.stats }
func (f *fakeSource) Reasons() *collector.Reasons           { return f.reasons }
func (f *fakeSource) Attached() int                         { return f.attached }

func sampleSource() *fakeSource {
	f := &fakeSource{
		stats:    collector.Stats{SinkDropped: 3, Evictions: 4, Decoded: 99, SkippedRuns: 5},
		reasons:  collector.NewReasons(map[uint16]string{0: "NOT_SPECIFIED", 1: "NO_SOCKET", 5: "TCP_ABORT_ON_CLOSE"}),
		attached: 6,
	}
	c := &f.counters
	c.Kinds[collector.KindUnreadClose] = 3
	c.Kinds[collector.KindUndrainedClose] = 2
	c.Kinds[collector.KindDataAfterClose] = 3
	c.TimeWaitRefusals = 2
	c.Kinds[collector.KindAbortClose] = 5
	c.Kinds[collector.KindResetReceived] = 6
	c.Kinds[collector.KindResetSent] = 7
	c.Kinds[collector.KindGracefulClose] = 8
	c.ResetReasons[1] = 7
	c.ResetReasons[5] = 3
	c.ResetReasons[9] = 2 // a reason this kernel has no name for
	c.ResetReasons[collector.ReasonUnknownSlot] = 1
	c.UnreadBytes = 1 + 1234 + 4096
	c.UnsentBytes = 10
	c.RefusedBytes = 11
	c.RingLost = 12
	c.UnreadHist[1] = 1  // 1
	c.UnreadHist[11] = 1 // 1234 in [1024, 2048)
	c.UnreadHist[13] = 1 // 4096 in [4096, 8192)
	return f
}

// histogramText renders the expected unread histogram for sampleSource.
func histogramText() string {
	var b strings.Builder
	b.WriteString("# HELP tcpclose_unread_at_close_bytes Unread bytes at each unread_close.\n")
	b.WriteString("# TYPE tcpclose_unread_at_close_bytes histogram\n")
	cum := 0
	for i := 1; i < collector.HistBuckets; i++ {
		if i == 1 || i == 11 || i == 13 {
			cum++
		}
		fmt.Fprintf(&b, "tcpclose_unread_at_close_bytes_bucket{le=\"%d\"} %d\n", uint64(1)<<i-1, cum)
	}
	b.WriteString("tcpclose_unread_at_close_bytes_bucket{le=\"+Inf\"} 3\n")
	b.WriteString("tcpclose_unread_at_close_bytes_sum 5331\n")
	b.WriteString("tcpclose_unread_at_close_bytes_count 3\n")
	return b.String()
}

func TestExporterGolden(t *testing.T) {
	tests := []struct {
		name    string
		src     Source
		metrics []string
		want    string
	}{
		{name: "not attached yet", src: nil,
			metrics: []string{"tcpclose_programs_attached", "tcpclose_closes_total", "tcpclose_resets_sent_total"},
			want: `
# HELP tcpclose_programs_attached BPF programs attached: 0 until attached, then every program this kernel needs (6 on most kernels).
# TYPE tcpclose_programs_attached gauge
tcpclose_programs_attached 0
`},
		{name: "closes and events", src: sampleSource(),
			metrics: []string{"tcpclose_closes_total", "tcpclose_data_after_close_total", "tcpclose_resets_received_total",
				"tcpclose_programs_attached"},
			want: `
# HELP tcpclose_closes_total TCP closes seen by the kernel programs, by kind: unread_close (close() with unread bytes, data discarded and RST sent), undrained_close (close() before the peer's EOF), abort_close (SO_LINGER zero), graceful_close.
# TYPE tcpclose_closes_total counter
tcpclose_closes_total{kind="abort_close"} 5
tcpclose_closes_total{kind="graceful_close"} 8
tcpclose_closes_total{kind="undrained_close"} 2
tcpclose_closes_total{kind="unread_close"} 3
# HELP tcpclose_data_after_close_total Segments with data that arrived after an undrained close and were answered with RST: the peer lost that data. socket: full (the kernel aborted the closed socket, counted in TCPAbortOnData) or time_wait (its TIME_WAIT mini-socket answered).
# TYPE tcpclose_data_after_close_total counter
tcpclose_data_after_close_total{socket="full"} 1
tcpclose_data_after_close_total{socket="time_wait"} 2
# HELP tcpclose_resets_received_total RSTs received on connections of this host.
# TYPE tcpclose_resets_received_total counter
tcpclose_resets_received_total 6
# HELP tcpclose_programs_attached BPF programs attached: 0 until attached, then every program this kernel needs (6 on most kernels).
# TYPE tcpclose_programs_attached gauge
tcpclose_programs_attached 6
`},
		{name: "resets by reason: every named reason, unnamed ones that counted, unknown", src: sampleSource(),
			metrics: []string{"tcpclose_resets_sent_total"},
			want: `
# HELP tcpclose_resets_sent_total RSTs sent by this host, by the kernel's reset reason (unknown before Linux 6.10).
# TYPE tcpclose_resets_sent_total counter
tcpclose_resets_sent_total{reason="9"} 2
tcpclose_resets_sent_total{reason="NOT_SPECIFIED"} 0
tcpclose_resets_sent_total{reason="NO_SOCKET"} 7
tcpclose_resets_sent_total{reason="TCP_ABORT_ON_CLOSE"} 3
tcpclose_resets_sent_total{reason="unknown"} 1
`},
		{name: "bytes and self metrics", src: sampleSource(),
			metrics: []string{"tcpclose_discarded_unread_bytes_total", "tcpclose_discarded_unsent_bytes_total",
				"tcpclose_refused_bytes_total", "tcpclose_ring_lost_records_total", "tcpclose_events_dropped_total",
				"tcpclose_correlation_evictions_total", "tcpclose_bpf_skipped_runs_total"},
			want: `
# HELP tcpclose_discarded_unread_bytes_total Received bytes discarded unread by unread_close closes.
# TYPE tcpclose_discarded_unread_bytes_total counter
tcpclose_discarded_unread_bytes_total 5331
# HELP tcpclose_discarded_unsent_bytes_total Queued bytes discarded unsent by abortive closes.
# TYPE tcpclose_discarded_unsent_bytes_total counter
tcpclose_discarded_unsent_bytes_total 10
# HELP tcpclose_refused_bytes_total Bytes of peer data refused with RST after an undrained close.
# TYPE tcpclose_refused_bytes_total counter
tcpclose_refused_bytes_total 11
# HELP tcpclose_ring_lost_records_total Event records counted by the kernel but not streamed because the ring buffer was full: logs miss them, counters do not.
# TYPE tcpclose_ring_lost_records_total counter
tcpclose_ring_lost_records_total 12
# HELP tcpclose_events_dropped_total Events dropped because the log output fell behind.
# TYPE tcpclose_events_dropped_total counter
tcpclose_events_dropped_total 3
# HELP tcpclose_correlation_evictions_total Per-socket correlation entries evicted for lack of room.
# TYPE tcpclose_correlation_evictions_total counter
tcpclose_correlation_evictions_total 4
# HELP tcpclose_bpf_skipped_runs_total Program runs the kernel skipped because a BPF program was already running on that CPU (recursion protection, 5.12+): what they would have counted is missing from every counter.
# TYPE tcpclose_bpf_skipped_runs_total counter
tcpclose_bpf_skipped_runs_total 5
`},
		{name: "unread histogram with exact integer bounds", src: sampleSource(),
			metrics: []string{"tcpclose_unread_at_close_bytes"}, want: "\n" + histogramText()},
		{name: "build info", src: nil, metrics: []string{"tcpclose_build_info"},
			want: `
# HELP tcpclose_build_info Build information of the running tcpclose-trace; always 1.
# TYPE tcpclose_build_info gauge
tcpclose_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := New("v1.2.3")
			if tt.src != nil {
				e.SetSource(tt.src)
			}
			if err := testutil.CollectAndCompare(e, strings.NewReader(tt.want), tt.metrics...); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestExporterCounterError(t *testing.T) {
	src := sampleSource()
	src.err = errors.New("map lookup failed")
	e := New("dev")
	e.SetSource(src)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	_, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "map lookup failed") {
		t.Fatalf("collect error = %v, want the counter read error", err)
	}
}

func TestExporterLint(t *testing.T) {
	e := New("dev")
	e.SetSource(sampleSource())
	by := NewByComm(2)
	by.Observe(&collector.Event{Kind: collector.KindUnreadClose, Comm: "curl", OwnerKnown: true})
	byPod := NewByPod(2)
	byPod.Observe(&collector.Event{Kind: collector.KindUnreadClose, Pod: &collector.PodInfo{Namespace: "a", Name: "b", Container: "c"}})
	reg, err := NewRegistry(e, by, byPod)
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func TestByCommCapsSeries(t *testing.T) {
	by := NewByComm(2)
	ev := func(kind collector.Kind, comm string, known bool) *collector.Event {
		return &collector.Event{Kind: kind, Comm: comm, OwnerKnown: known}
	}
	for _, e := range []*collector.Event{
		ev(collector.KindUnreadClose, "nginx", true),
		ev(collector.KindUnreadClose, "nginx", true),
		ev(collector.KindDataAfterClose, "", false),   // owner unknown: takes the second slot
		ev(collector.KindGracefulClose, "curl", true), // not an anomaly: not counted
		ev(collector.KindAbortClose, "curl", true),    // third name: overflow
		ev(collector.KindAbortClose, "java", true),    // fourth name: overflow
		ev(collector.KindUnreadClose, "nginx", true),
	} {
		by.Observe(e)
	}
	want := `
# HELP tcpclose_anomalies_by_comm_total Streamed anomaly events by the owner's command name: the most frequent names have their own series, the rest count as comm="(other)", unknown owners as comm="(unknown)"; misses ring losses.
# TYPE tcpclose_anomalies_by_comm_total counter
tcpclose_anomalies_by_comm_total{comm="(other)",kind="abort_close"} 2
tcpclose_anomalies_by_comm_total{comm="(unknown)",kind="data_after_close"} 1
tcpclose_anomalies_by_comm_total{comm="nginx",kind="unread_close"} 3
`
	if err := testutil.CollectAndCompare(by, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestByCommHostileNames: names that are not UTF-8, hold control bytes, or
// equal a marker get valid label values of their own, and never add to
// the overflow or unknown series.
func TestByCommHostileNames(t *testing.T) {
	by := NewByComm(10)
	for _, comm := range []string{"\xff", "\x1b[2J", "a\nb", "(other)", "(unknown)", "other", "-", ""} {
		by.Observe(&collector.Event{Kind: collector.KindUnreadClose, Comm: comm, OwnerKnown: true})
	}
	want := `
# HELP tcpclose_anomalies_by_comm_total Streamed anomaly events by the owner's command name: the most frequent names have their own series, the rest count as comm="(other)", unknown owners as comm="(unknown)"; misses ring losses.
# TYPE tcpclose_anomalies_by_comm_total counter
tcpclose_anomalies_by_comm_total{comm="",kind="unread_close"} 1
tcpclose_anomalies_by_comm_total{comm="\"(other)\"",kind="unread_close"} 1
tcpclose_anomalies_by_comm_total{comm="\"(unknown)\"",kind="unread_close"} 1
tcpclose_anomalies_by_comm_total{comm="\"\\x1b[2J\"",kind="unread_close"} 1
tcpclose_anomalies_by_comm_total{comm="\"\\xff\"",kind="unread_close"} 1
tcpclose_anomalies_by_comm_total{comm="\"a\\nb\"",kind="unread_close"} 1
tcpclose_anomalies_by_comm_total{comm="-",kind="unread_close"} 1
tcpclose_anomalies_by_comm_total{comm="other",kind="unread_close"} 1
`
	if err := testutil.CollectAndCompare(by, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestScrapeSurvivesHostileNames is issue 14's first finding: a process named
// "\xff" made every scrape fail with 500. The scrape must succeed, with the
// exact kernel counters in it.
func TestScrapeSurvivesHostileNames(t *testing.T) {
	e := New("dev")
	e.SetSource(sampleSource())
	byComm, byPod := NewByComm(5), NewByPod(5)
	reg, err := NewRegistry(e, byComm, byPod)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"\xff", "\xc3(", "\x1b[2J\x00"} {
		ev := &collector.Event{Kind: collector.KindUnreadClose, Comm: name, OwnerKnown: true,
			Pod: &collector.PodInfo{Namespace: name, Name: name, Container: name}}
		byComm.Observe(ev)
		byPod.Observe(ev)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	for range 2 {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape status %d:\n%s", resp.StatusCode, body)
		}
		for _, want := range []string{`tcpclose_closes_total{kind="unread_close"} 3`,
			`tcpclose_anomalies_by_comm_total{comm="\"\\xff\"",kind="unread_close"} 1`,
			`tcpclose_anomalies_by_pod_total{container="\"\\xc3(\"",kind="unread_close",namespace="\"\\xc3(\"",pod="\"\\xc3(\""} 1`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("scrape lacks %s:\n%s", want, body)
			}
		}
		if !utf8.Valid(body) {
			t.Errorf("scrape is not UTF-8")
		}
	}
}

// FuzzByOwnerLabels: whatever bytes the names hold, the series gather
// without error, with printable label values, one per distinct name.
func FuzzByOwnerLabels(f *testing.F) {
	f.Add("\xff", "\x1b[2J", "a\nb")
	f.Add("(other)", "other", "-")
	f.Add("", "(unknown)", "\"(other)\"")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		byComm, byPod := NewByComm(3), NewByPod(3)
		names := []string{a, b, c}
		for _, n := range names {
			ev := &collector.Event{Kind: collector.KindAbortClose, Comm: n, OwnerKnown: true,
				Pod: &collector.PodInfo{Namespace: n, Name: n, UID: n, Container: n}}
			byComm.Observe(ev)
			byPod.Observe(ev)
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(byComm, byPod)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gather: %v", err)
		}
		distinct := map[string]bool{}
		for _, n := range names {
			distinct[n] = true
		}
		for _, mf := range mfs {
			if len(mf.GetMetric()) != len(distinct) {
				t.Errorf("%s: %d series for %d distinct names", mf.GetName(), len(mf.GetMetric()), len(distinct))
			}
			var total float64
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
				for _, l := range m.GetLabel() {
					v := l.GetValue()
					if v == Other || v == Unknown {
						t.Errorf("%s: a real name gave the marker %s", mf.GetName(), v)
					}
					for _, r := range v {
						if !strconv.IsPrint(r) {
							t.Errorf("%s: label %s=%q holds %U", mf.GetName(), l.GetName(), v, r)
						}
					}
				}
			}
			if total != float64(len(names)) {
				t.Errorf("%s: %v events counted, want %d", mf.GetName(), total, len(names))
			}
		}
	})
}

// TestByCommRanksByCount: names that filled the slots first lose them to
// names seen more often, at the next scrape.
func TestByCommRanksByCount(t *testing.T) {
	by := NewByComm(2)
	observe := func(comm string, n int) {
		for range n {
			by.Observe(&collector.Event{Kind: collector.KindUnreadClose, Comm: comm, OwnerKnown: true})
		}
	}
	observe("junk1", 1)
	observe("junk2", 1)
	observe("junk3", 1) // a candidate
	observe("nginx", 3) // a candidate, seen more than any holder
	observe("java", 2)  // a candidate, seen more than any holder
	series := func() map[string]float64 {
		got := map[string]float64{}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(by)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
		return got
	}
	check := func(want map[string]float64) {
		t.Helper()
		if got := series(); !maps.Equal(got, want) {
			t.Errorf("series %v, want %v", got, want)
		}
	}
	// The scrape shows the slots as they were, then re-ranks.
	check(map[string]float64{"junk1": 1, "junk2": 1, Other: 6})
	observe("nginx", 1)
	observe("java", 1)
	observe("junk1", 1) // now in the overflow
	check(map[string]float64{"nginx": 1, "java": 1, Other: 7})
	// junk1, seen 2 times, cannot take java's slot (3 times), nor ties.
	observe("junk1", 1)
	check(map[string]float64{"nginx": 1, "java": 1, Other: 8})
	observe("junk1", 5)
	check(map[string]float64{"nginx": 1, "java": 1, Other: 13})
	// junk1 (8) outranked java (3): java's series is gone, its value kept;
	// junk1's series, from its first slot, continues.
	observe("java", 6) // seen 9, counted in the overflow
	check(map[string]float64{"nginx": 1, "junk1": 1, Other: 19})
	// java (9) wins a slot back from nginx (4), and its series continues.
	observe("java", 1)
	check(map[string]float64{"java": 2, "junk1": 1, Other: 19})
}

func TestByPodCapsSeries(t *testing.T) {
	by := NewByPod(2)
	ev := func(kind collector.Kind, pod *collector.PodInfo) *collector.Event {
		return &collector.Event{Kind: kind, Comm: "app", OwnerKnown: true, Pod: pod}
	}
	web := &collector.PodInfo{Namespace: "shop", Name: "web-0", Container: "nginx", UID: "u1"}
	sidecar := &collector.PodInfo{Namespace: "shop", Name: "web-0", Container: "envoy", UID: "u1"}
	nameless := &collector.PodInfo{UID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"}
	for _, e := range []*collector.Event{
		ev(collector.KindUnreadClose, web),
		ev(collector.KindUnreadClose, nil),        // not in a pod: not counted
		ev(collector.KindGracefulClose, sidecar),  // not an anomaly: not counted
		ev(collector.KindDataAfterClose, sidecar), // second container
		ev(collector.KindUnreadClose, nameless),   // third: overflow
		ev(collector.KindUnreadClose, web),
	} {
		by.Observe(e)
	}
	want := `
# HELP tcpclose_anomalies_by_pod_total Streamed anomaly events by the owner's Kubernetes pod and container: the most frequent containers have their own series, the rest count with every label "(other)"; misses ring losses.
# TYPE tcpclose_anomalies_by_pod_total counter
tcpclose_anomalies_by_pod_total{container="envoy",kind="data_after_close",namespace="shop",pod="web-0"} 1
tcpclose_anomalies_by_pod_total{container="nginx",kind="unread_close",namespace="shop",pod="web-0"} 2
tcpclose_anomalies_by_pod_total{container="(other)",kind="unread_close",namespace="(other)",pod="(other)"} 1
`
	if err := testutil.CollectAndCompare(by, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	// Within the cap, a pod without names is labelled by its UID.
	by = NewByPod(5)
	by.Observe(ev(collector.KindUnreadClose, nameless))
	want = `
# HELP tcpclose_anomalies_by_pod_total Streamed anomaly events by the owner's Kubernetes pod and container: the most frequent containers have their own series, the rest count with every label "(other)"; misses ring losses.
# TYPE tcpclose_anomalies_by_pod_total counter
tcpclose_anomalies_by_pod_total{container="",kind="unread_close",namespace="",pod="uid:0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"} 1
`
	if err := testutil.CollectAndCompare(by, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestNewRegistryRejectsDuplicates(t *testing.T) {
	if _, err := NewRegistry(New("dev"), New("dev")); err == nil {
		t.Fatal("registering the exporter twice succeeded")
	}
}

// TestByOwnerCounterSemantics: over random streams with re-ranking at every
// scrape, each series only grows, also across the scrapes it is absent
// from, and what the scrapes showed of every series adds up to every event
// observed. Names are at most 2 x limit, so none is forgotten.
func TestByOwnerCounterSemantics(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	kinds := []collector.Kind{collector.KindUnreadClose, collector.KindAbortClose, collector.KindDataAfterClose}
	for round := range 50 {
		limit := 1 + r.IntN(5)
		names := 1 + r.IntN(2*limit)
		by := NewByComm(limit)
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(by)
		last := map[string]float64{} // series (comm and kind) -> last value a scrape showed
		var observed float64
		for scrape := range 40 {
			for range r.IntN(20) {
				// Skewed: low-numbered names are seen more, in bursts that change.
				n := min(r.IntN(names), r.IntN(names)+scrape%3)
				by.Observe(&collector.Event{Kind: kinds[r.IntN(len(kinds))], Comm: fmt.Sprint("c", n), OwnerKnown: true})
				observed++
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			shown := 0
			for _, mf := range mfs {
				for _, m := range mf.GetMetric() {
					key := m.GetLabel()[0].GetValue() + "/" + m.GetLabel()[1].GetValue()
					v := m.GetCounter().GetValue()
					if v < last[key] {
						t.Fatalf("round %d scrape %d: %s went from %v to %v", round, scrape, key, last[key], v)
					}
					last[key] = v
					if m.GetLabel()[0].GetValue() != Other {
						shown++
					}
				}
			}
			var sum float64
			for _, v := range last {
				sum += v
			}
			if sum != observed {
				t.Fatalf("round %d scrape %d: series add up to %v, %v events observed", round, scrape, sum, observed)
			}
			if shown > limit*len(kinds) {
				t.Fatalf("round %d scrape %d: %d named series, limit %d names", round, scrape, shown, limit)
			}
		}
	}
}

// TestByOwnerBoundedUnderChurn: a stream of ever new names keeps at most
// 2 x limit names tracked and limit named series.
func TestByOwnerBoundedUnderChurn(t *testing.T) {
	by := NewByComm(10)
	for i := range 100000 {
		by.Observe(&collector.Event{Kind: collector.KindUnreadClose, Comm: strconv.Itoa(i), OwnerKnown: true})
		if i%1000 == 0 {
			if n := testutil.CollectAndCount(by); n > 11 {
				t.Fatalf("%d series, want at most 11", n)
			}
		}
	}
	if len(by.tracked) > 20 || by.slots != 10 {
		t.Fatalf("%d names tracked, %d slots", len(by.tracked), by.slots)
	}
	none := NewByComm(0)
	for i := range 100 {
		none.Observe(&collector.Event{Kind: collector.KindUnreadClose, Comm: strconv.Itoa(i), OwnerKnown: true})
	}
	if len(none.tracked) != 0 || testutil.CollectAndCount(none) != 1 {
		t.Fatalf("limit 0: %d names tracked, %d series", len(none.tracked), testutil.CollectAndCount(none))
	}
}

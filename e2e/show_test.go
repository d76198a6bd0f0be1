package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// TestShowSignalOverNoise (issue 13, point 6): undrained closes that no data
// follows are not shown by default, in the NDJSON, the table or the
// daemon's log, but counted in the summary; an undrained close followed by
// data_after_close is shown right before it, as one story; --all and
// --kinds show them. Five tracers watch the same run: NDJSON by default,
// with --all and with --kinds undrained_close, the table, and the daemon.
func TestShowSignalOverNoise(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	ns := newNamespace(t)
	netns := strconv.FormatUint(uint64(ns.Inode), 10)

	byDefault := startCLI(t, bin, "--netns", netns, "-o", "json")
	all := startCLI(t, bin, "--netns", netns, "-o", "json", "--all")
	kinds := startCLI(t, bin, "--netns", netns, "-o", "json", "--kinds", "undrained_close")
	table := startCLI(t, bin, "--netns", netns, "--no-hints")
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, bin, http.DefaultClient, "http://"+target, "--web.listen-address", target, "--netns", netns)

	before, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	// Quiet undrained closes (no data follows), the story (an undrained
	// close whose TIME_WAIT successor refuses the peer's data), and an
	// unread close; both families.
	var quiet []*scenario.Result
	var stories, unread []*scenario.Result
	for _, family := range []string{"ipv4", "ipv6"} {
		for _, name := range []string{"undrained_quiet", "undrained_time_wait", "undrained_quiet", "unread_close"} {
			r, err := scenario.Run(ns, name, family)
			if err != nil {
				t.Fatal(err)
			}
			switch name {
			case "undrained_quiet":
				quiet = append(quiet, r)
			case "undrained_time_wait":
				stories = append(stories, r)
			default:
				unread = append(unread, r)
			}
		}
	}
	after, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	mib := after.Delta(before)
	if mib["TcpExtTCPAbortOnClose"] != uint64(len(unread)) {
		t.Fatalf("TcpExtTCPAbortOnClose delta %d, want %d", mib["TcpExtTCPAbortOnClose"], len(unread))
	}
	time.Sleep(300 * time.Millisecond) // every tracer drains its ring within 100 ms
	for _, r := range []*cliRun{byDefault, all, kinds, table} {
		r.stop(t)
	}
	d.stop(t)

	undrainedBy := func(rs []*scenario.Result) map[int]bool {
		m := map[int]bool{}
		for _, r := range rs {
			m[r.Closer.PID] = true
		}
		return m
	}
	quietPIDs, storyPIDs := undrainedBy(quiet), undrainedBy(stories)
	nUndrained := len(quiet) + len(stories)

	// NDJSON by default: each story is its close then its data, adjacent,
	// the close at its own time; no quiet close; the unread closes.
	recs := ndjson(t, byDefault.stdout.String())
	var storiesSeen int
	for i, rec := range recs {
		switch rec.Kind {
		case "undrained_close":
			if quietPIDs[int(rec.PID)] || !storyPIDs[int(rec.PID)] {
				t.Errorf("default NDJSON shows an undrained_close no data followed: %+v", rec)
				continue
			}
			if i+1 == len(recs) || recs[i+1].Kind != "data_after_close" || recs[i+1].Cookie != rec.Cookie {
				t.Errorf("undrained_close %+v not followed by its data_after_close", rec)
				continue
			}
			dac := recs[i+1]
			closed, _ := time.Parse(time.RFC3339Nano, rec.Time)
			refused, _ := time.Parse(time.RFC3339Nano, dac.Time)
			if dac.PID != rec.PID || dac.Comm != rec.Comm || dac.SinceCloseNs <= 0 ||
				refused.Sub(closed) != time.Duration(dac.SinceCloseNs) || dac.RefusedBytes != 100 ||
				rec.LPort != dac.LPort || rec.RPort != dac.RPort || rec.State != "ESTABLISHED" {
				t.Errorf("story:\n%+v\n%+v\nwant the same owner and socket, since_close_ns = the time between them, 100 bytes refused", rec, dac)
			}
			storiesSeen++
		case "data_after_close":
			if i == 0 || recs[i-1].Kind != "undrained_close" || recs[i-1].Cookie != rec.Cookie {
				t.Errorf("data_after_close %+v without its undrained_close before it", rec)
			}
		}
	}
	if storiesSeen != len(stories) {
		t.Errorf("default NDJSON told %d stories, want %d", storiesSeen, len(stories))
	}
	inTimeOrder(t, "default NDJSON", recs)
	if got := countKinds(recs)["unread_close"]; got != len(unread) {
		t.Errorf("default NDJSON shows %d unread_close, want %d", got, len(unread))
	}
	// Counted all the same: the kernel's counters and the per-process
	// summary have every undrained close; the ones not shown are said.
	sum := byDefault.stderr.String()
	if got := summaryCount(t, sum, "undrained_close"); got != uint64(nUndrained) {
		t.Errorf("summary counter undrained_close = %d, want %d", got, nUndrained)
	}
	if got := summaryRows(t, sum, "undrained_close"); got != uint64(nUndrained) {
		t.Errorf("summary rows count %d undrained_close, want %d", got, nUndrained)
	}
	if got := summaryCount(t, sum, "events not shown (--kinds, --all)"); got != uint64(len(quiet)) {
		t.Errorf("events not shown = %d, want %d (the quiet undrained closes)", got, len(quiet))
	}

	// --all: every undrained close when it happens, the stories' closes
	// once, and graceful closes.
	allRecs := ndjson(t, all.stdout.String())
	allKinds := countKinds(allRecs)
	if allKinds["undrained_close"] != nUndrained || allKinds["data_after_close"] != len(stories) ||
		allKinds["unread_close"] != len(unread) || allKinds["graceful_close"] == 0 {
		t.Errorf("--all shows %v, want %d undrained_close, %d data_after_close, %d unread_close and graceful closes",
			allKinds, nUndrained, len(stories), len(unread))
	}
	if allKinds["reset_received"] < len(stories)+len(unread) {
		t.Errorf("--all shows %d reset_received, want at least %d (the stories' provisional ones and the unread closes')",
			allKinds["reset_received"], len(stories)+len(unread))
	}
	inTimeOrder(t, "--all NDJSON", allRecs)
	if got := summaryCount(t, all.stderr.String(), "events not shown (--kinds, --all)"); got != 0 {
		t.Errorf("--all: events not shown = %d, want 0", got)
	}

	// --kinds undrained_close: those alone, each once.
	kindRecs := ndjson(t, kinds.stdout.String())
	if got := countKinds(kindRecs); len(got) != 1 || got["undrained_close"] != nUndrained {
		t.Errorf("--kinds undrained_close shows %v, want %d undrained_close only", got, nUndrained)
	}

	// The table: the story's two lines adjacent, no quiet close.
	var lines []string
	events, _, _ := strings.Cut(table.stdout.String(), "\nSUMMARY\n")
	for l := range strings.Lines(events) {
		if strings.Contains(l, "undrained_close") || strings.Contains(l, "data_after_close") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	for pid := range quietPIDs {
		for _, l := range lines {
			if strings.Fields(l)[1] == strconv.Itoa(pid) {
				t.Errorf("table shows a quiet undrained close: %s", l)
			}
		}
	}
	if len(lines) != 2*len(stories) {
		t.Errorf("table has %d undrained/data lines, want %d:\n%s", len(lines), 2*len(stories), strings.Join(lines, "\n"))
	}
	for i := 0; i+1 < len(lines); i += 2 {
		c, dac := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if c[5] != "undrained_close" || dac[5] != "data_after_close" || !slices.Equal(c[1:5], dac[1:5]) {
			t.Errorf("story lines:\n%s\n%s\nwant the close then the data, same pid, comm and addresses", lines[i], lines[i+1])
		}
	}

	// The daemon: the same selection; data loss at WARN, the rest at INFO.
	levels := map[string]map[string]int{}
	for _, rec := range d.logRecords(t) {
		kind, level := rec["kind"].(string), rec["level"].(string)
		if levels[kind] == nil {
			levels[kind] = map[string]int{}
		}
		levels[kind][level]++
	}
	want := map[string]map[string]int{
		"undrained_close":  {"INFO": len(stories)},
		"data_after_close": {"WARN": len(stories)},
		"unread_close":     {"WARN": len(unread)},
	}
	for kind, w := range want {
		if fmt.Sprint(levels[kind]) != fmt.Sprint(w) {
			t.Errorf("daemon logged %s at %v, want %v", kind, levels[kind], w)
		}
	}
	if n := levels["reset_received"]["WARN"]; n != 0 || levels["reset_received"]["INFO"] == 0 {
		t.Errorf("daemon logged reset_received at %v, want INFO", levels["reset_received"])
	}
	if _, ok := levels["graceful_close"]; ok {
		t.Errorf("daemon logged graceful closes by default: %v", levels["graceful_close"])
	}
}

// ndjson decodes the tracer's NDJSON output.
func ndjson(t *testing.T, out string) []output.Record {
	t.Helper()
	var recs []output.Record
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec output.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// inTimeOrder asserts that the records come in time order (the reset
// received by a story's peer is provisional: held back by the collector,
// it must keep its place). A story's undrained_close is told right before
// its data_after_close, at its own earlier time: it is placed at the
// data's time.
func inTimeOrder(t *testing.T, name string, recs []output.Record) {
	t.Helper()
	var last time.Time
	for i, rec := range recs {
		at, err := time.Parse(time.RFC3339Nano, rec.Time)
		if err != nil {
			t.Fatalf("%s: time %q: %v", name, rec.Time, err)
		}
		if rec.Kind == "undrained_close" && i+1 < len(recs) && recs[i+1].Kind == "data_after_close" &&
			recs[i+1].Cookie == rec.Cookie && recs[i+1].SinceCloseNs > 0 {
			at = at.Add(time.Duration(recs[i+1].SinceCloseNs))
		}
		if at.Before(last) {
			t.Errorf("%s: line %d (%s at %s) comes after a line at %s", name, i+1, rec.Kind, rec.Time, last.Format(time.RFC3339Nano))
		}
		last = at
	}
}

func countKinds(recs []output.Record) map[string]int {
	n := map[string]int{}
	for _, r := range recs {
		n[r.Kind]++
	}
	return n
}

// summaryRows sums the EVENTS column of the summary's per-process rows of
// one kind.
func summaryRows(t *testing.T, summary, kind string) uint64 {
	t.Helper()
	_, rows, ok := strings.Cut(summary, "PID  ")
	if !ok {
		t.Fatalf("no SUMMARY table:\n%s", summary)
	}
	rows, _, _ = strings.Cut(rows, "\n\n")
	var n uint64
	for _, row := range strings.Split(rows, "\n")[1:] {
		f := strings.Fields(row)
		if len(f) == 4 && f[2] == kind {
			v, _ := strconv.ParseUint(f[3], 10, 64)
			n += v
		}
	}
	return n
}

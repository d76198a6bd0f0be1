package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/syncbuf"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// hostileName is a command name an unprivileged process gives itself, and
// how the outputs must show it.
type hostileName struct {
	comm  string // the bytes passed to prctl(PR_SET_NAME)
	table string // the table's and the summary's COMM column
	label string // the comm label of tcpclose_anomalies_by_comm_total
}

var hostileNames = []hostileName{
	{"\xff", `"\xff"`, `"\xff"`},                // not UTF-8: broke every scrape
	{"\x1b[2J", `"\x1b[2J"`, `"\x1b[2J"`},       // clears the terminal
	{"a\nb", `"a\nb"`, `"a\nb"`},                // forges a table row
	{"other", "other", "other"},                 // the old overflow marker
	{"(other)", "(other)", `"(other)"`},         // the overflow marker
	{"x\t\u202e", `"x\t\u202e"`, `"x\t\u202e"`}, // a tab and a bidi override
}

// cliRun is a running `tcpclose-trace` (trace mode) whose output is kept.
type cliRun struct {
	cmd            *exec.Cmd
	stdout, stderr syncbuf.Buffer
	waited         chan error
}

// startCLI starts bin with args and a ready file, and returns once it is ready.
func startCLI(t *testing.T, bin string, args ...string) *cliRun {
	t.Helper()
	ready := filepath.Join(t.TempDir(), "ready")
	r := &cliRun{cmd: exec.Command(bin, append(args, "--ready-file", ready, "--duration", "120s")...),
		waited: make(chan error, 1)}
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.waited <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			_ = r.cmd.Process.Kill()
			<-r.waited
		}
	})
	waitForFile(t, ready, r.cmd)
	return r
}

// stop interrupts the tracer and waits for its exit and summary.
func (r *cliRun) stop(t *testing.T) {
	t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r.waited:
		if err != nil {
			t.Fatalf("tracer exit: %v; stderr: %s", err, r.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tracer still running 10 s after SIGINT")
	}
}

// TestHostileCommandNames: processes that name themselves with bytes that
// are not UTF-8, terminal escapes, a newline, or the overflow markers close
// a socket with unread data. The table shows one row per event with the name
// escaped and no control byte, the NDJSON decodes, and the daemon's
// /metrics answers 200 with the exact kernel counters and a valid label
// per name (issue 14, points 1-3).
func TestHostileCommandNames(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	ns := newNamespace(t)
	netns := strconv.FormatUint(uint64(ns.Inode), 10)

	table := startCLI(t, bin, "--netns", netns)
	ndjson := startCLI(t, bin, "--netns", netns, "-o", "json")
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, bin, http.DefaultClient, "http://"+target, "--web.listen-address", target,
		"--netns", netns, "--metrics.by-comm", "10")

	before, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	type event struct {
		pid          int
		kind         string
		lport, rport uint16
	}
	var want []event
	closers := map[int]hostileName{}
	peers := map[int]bool{}
	for _, h := range hostileNames {
		r, err := scenario.RunAs(ns, "unread_close", "ipv4", h.comm)
		if err != nil {
			t.Fatalf("closer named %q: %v", h.comm, err)
		}
		if r.Closer.Comm != h.comm {
			t.Fatalf("closer named %q, the kernel has %q", h.comm, r.Closer.Comm)
		}
		closers[r.Closer.PID] = h
		peers[r.Peer.PID] = true
		want = append(want, event{r.Closer.PID, "unread_close", r.CloserPort, r.PeerPort},
			event{r.Peer.PID, "reset_received", r.PeerPort, r.CloserPort})
	}
	after, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	mib := after.Delta(before)
	if got := mib["TcpExtTCPAbortOnClose"]; got != uint64(len(hostileNames)) {
		t.Fatalf("TcpExtTCPAbortOnClose delta %d, want %d", got, len(hostileNames))
	}
	time.Sleep(300 * time.Millisecond) // every tracer drains its ring within 100 ms
	wantSet := map[event]bool{}
	for _, e := range want {
		wantSet[e] = true
	}

	// The daemon: every scrape answers 200 with the kernel counters and one
	// valid series per name.
	for scrape := range 2 {
		resp, err := http.Get("http://" + target + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape %d: status %d:\n%.2000s", scrape, resp.StatusCode, body)
		}
		if !utf8.Valid(body) {
			t.Errorf("scrape %d is not UTF-8", scrape)
		}
		parser := expfmt.NewTextParser(model.LegacyValidation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("scrape %d does not parse: %v", scrape, err)
		}
		closes := map[string]float64{}
		for _, m := range families["tcpclose_closes_total"].GetMetric() {
			closes[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
		if got := closes["unread_close"]; got != float64(mib["TcpExtTCPAbortOnClose"]) {
			t.Errorf("scrape %d: tcpclose_closes_total{kind=unread_close} = %v, TcpExtTCPAbortOnClose %d",
				scrape, got, mib["TcpExtTCPAbortOnClose"])
		}
		byComm := map[string]float64{}
		for _, m := range families["tcpclose_anomalies_by_comm_total"].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			byComm[l["comm"]+" "+l["kind"]] = m.GetCounter().GetValue()
		}
		for _, h := range hostileNames {
			if got := byComm[h.label+" unread_close"]; got != 1 {
				t.Errorf("scrape %d: tcpclose_anomalies_by_comm_total{comm=%s,kind=unread_close} = %v, want 1 (series: %v)",
					scrape, strconv.Quote(h.label), got, byComm)
			}
		}
		if got := byComm["tct-peer reset_received"]; got != float64(len(hostileNames)) {
			t.Errorf("scrape %d: tct-peer reset_received = %v, want %d", scrape, got, len(hostileNames))
		}
		for _, marker := range []string{"(other)", "(unknown)"} {
			for k, v := range byComm {
				if strings.HasPrefix(k, marker+" ") {
					t.Errorf("scrape %d: a named process counted under the marker: %s = %v", scrape, k, v)
				}
			}
		}
	}
	d.stop(t)
	logged := 0
	for _, rec := range d.logRecords(t) { // each line decodes as JSON
		if rec["kind"] == "unread_close" {
			logged++
		}
	}
	if logged != len(hostileNames) {
		t.Errorf("daemon logged %d unread_close, want %d", logged, len(hostileNames))
	}

	// NDJSON: every line decodes, exactly the expected events.
	ndjson.stop(t)
	got := map[event]bool{}
	sc := bufio.NewScanner(strings.NewReader(ndjson.stdout.String()))
	lines := 0
	for sc.Scan() {
		lines++
		var rec output.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("NDJSON line does not decode: %v: %q", err, sc.Text())
		}
		e := event{int(rec.PID), rec.Kind, rec.LPort, rec.RPort}
		if !wantSet[e] || got[e] {
			t.Errorf("NDJSON: unexpected or repeated event %+v", rec)
		}
		got[e] = true
		if h, ok := closers[e.pid]; ok {
			var wantComm string
			b, _ := json.Marshal(h.comm)
			_ = json.Unmarshal(b, &wantComm) // JSON's view: U+FFFD for bytes that are not UTF-8
			if rec.Comm != wantComm {
				t.Errorf("NDJSON comm %q, want %q", rec.Comm, wantComm)
			}
		}
	}
	if lines != len(want) {
		t.Errorf("NDJSON has %d lines, want %d:\n%s", lines, len(want), ndjson.stdout.String())
	}

	// The table: no control byte anywhere, one row per event, the names
	// escaped, and the summary's rows likewise.
	table.stop(t)
	out := table.stdout.String()
	if !utf8.ValidString(out) {
		t.Errorf("table output is not UTF-8:\n%q", out)
	}
	for i := 0; i < len(out); i++ {
		if c := out[i]; c < ' ' && c != '\n' || c == 0x7f {
			t.Fatalf("table output holds control byte %#x at %d:\n%q", c, i, out)
		}
	}
	rows, summaryRows := 0, 0
	seen := map[event]bool{}
	inSummary := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case line == "SUMMARY":
			inSummary = true
		case len(f) == 0 || f[0] == "TIME" || f[0] == "PID" || strings.HasPrefix(line, "  hint("):
		case inSummary:
			pid, err := strconv.Atoi(f[0])
			if h, ok := closers[pid]; err == nil && ok {
				summaryRows++
				if len(f) != 4 || f[1] != h.table || f[2] != "unread_close" || f[3] != "1" {
					t.Errorf("summary row %q, want %s unread_close 1", line, h.table)
				}
			}
		default:
			if len(f) < 6 {
				t.Errorf("table row %q: too few columns", line)
				continue
			}
			rows++
			pid, _ := strconv.Atoi(f[1])
			lport, rport := portOf(t, f[3]), portOf(t, f[4])
			e := event{pid, f[5], lport, rport}
			if !wantSet[e] || seen[e] {
				t.Errorf("table: unexpected or repeated row %q", line)
			}
			seen[e] = true
			if h, ok := closers[pid]; ok && f[2] != h.table {
				t.Errorf("table row %q: comm %s, want %s", line, f[2], h.table)
			}
			if peers[pid] && f[2] != "tct-peer" {
				t.Errorf("table row %q: comm %s, want tct-peer", line, f[2])
			}
		}
	}
	if rows != len(want) || summaryRows != len(hostileNames) {
		t.Errorf("table: %d rows, want %d; summary: %d rows of the closers, want %d:\n%s",
			rows, len(want), summaryRows, len(hostileNames), out)
	}
}

// portOf reads the port of a table's address column (127.0.0.1:80, [::1]:80).
func portOf(t *testing.T, hostPort string) uint16 {
	t.Helper()
	i := strings.LastIndexByte(hostPort, ':')
	p, err := strconv.ParseUint(hostPort[i+1:], 10, 16)
	if err != nil {
		t.Errorf("address column %q: %v", hostPort, err)
	}
	return uint16(p)
}

package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// scrape reads a daemon's /metrics into a map from "name{labels}" to value.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		m[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// sumOf adds the series of one metric, whatever their labels.
func sumOf(m map[string]float64, name string) uint64 {
	var sum float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			sum += v
		}
	}
	return uint64(sum)
}

// TestServeRingOverflow: the daemon with the smallest ring (--ring-size 4K)
// is frozen (SIGSTOP) while a burst of mixed connections runs, so its ring
// overflows for certain. Afterwards the exported counters still equal the
// namespace's MIB deltas exactly, the loss is exported, and every logged
// event is one the kernel counted.
func TestServeRingOverflow(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	ns := newNamespace(t)
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + target
	d := startDaemon(t, bin, http.DefaultClient, base, "--web.listen-address", target,
		"--netns", strconv.FormatUint(uint64(ns.Inode), 10), "--ring-size", "4K")
	before, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	m0 := scrape(t, base)

	if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var r *scenario.MixedResult
	r, err = scenario.RunMixed(ns, "ipv4", 1200)
	if cerr := d.cmd.Process.Signal(syscall.SIGCONT); cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatal(err)
	}
	after, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	mib := after.Delta(before)
	time.Sleep(500 * time.Millisecond) // the daemon drains what the ring kept
	m1 := scrape(t, base)
	delta := func(name string) uint64 { return sumOf(m1, name) - sumOf(m0, name) }
	series := func(key string) uint64 { return uint64(m1[key] - m0[key]) }

	lost := delta("tcpclose_ring_lost_records_total")
	if lost == 0 {
		t.Fatalf("no ring loss with a 4K ring and a frozen reader: the test did not overflow")
	}
	abortOnData := series(`tcpclose_data_after_close_total{socket="full"}`)
	checks := []struct {
		what      string
		got, want uint64
	}{
		{"unread_close = TcpExtTCPAbortOnClose", series(`tcpclose_closes_total{kind="unread_close"}`), mib["TcpExtTCPAbortOnClose"]},
		{"unread_close = the run's", series(`tcpclose_closes_total{kind="unread_close"}`), uint64(r.Count[scenario.MixedUnread])},
		{"abort_close + data_after_close{socket=full} = TcpExtTCPAbortOnData",
			series(`tcpclose_closes_total{kind="abort_close"}`) + abortOnData, mib["TcpExtTCPAbortOnData"]},
		{"resets sent = TcpOutRsts", delta("tcpclose_resets_sent_total"), mib["TcpOutRsts"]},
		{"unread bytes = the run's", delta("tcpclose_discarded_unread_bytes_total"), r.UnreadBytes},
		{"refused bytes = the run's", delta("tcpclose_refused_bytes_total"), r.RefusedBytes},
		{"graceful closes (both ends) = the run's", series(`tcpclose_closes_total{kind="graceful_close"}`), 2 * uint64(r.Count[scenario.MixedGraceful])},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
		}
	}

	// The log misses what was lost, and invents no close.
	logged := map[string]uint64{}
	for _, rec := range d.logRecords(t) {
		logged[rec["kind"].(string)]++
	}
	var counted, loggedAll uint64
	for _, kind := range []string{"unread_close", "undrained_close", "abort_close"} {
		n := series(fmt.Sprintf(`tcpclose_closes_total{kind=%q}`, kind))
		counted += n
		loggedAll += logged[kind]
		if logged[kind] > n {
			t.Errorf("%s: %d logged, only %d counted", kind, logged[kind], n)
		}
	}
	for kind, metric := range map[string]string{"data_after_close": "tcpclose_data_after_close_total",
		"reset_received": "tcpclose_resets_received_total"} {
		counted += delta(metric)
		loggedAll += logged[kind]
	}
	if loggedAll >= counted {
		t.Errorf("%d events logged of %d counted, with %d records lost: the log should miss some", loggedAll, counted, lost)
	}
	d.stop(t)
	t.Logf("%d connections; %d records lost; %d of %d anomalies logged; MIB deltas AbortOnClose=%d AbortOnData=%d OutRsts=%d",
		1200, lost, loggedAll, counted, mib["TcpExtTCPAbortOnClose"], mib["TcpExtTCPAbortOnData"], mib["TcpOutRsts"])
}

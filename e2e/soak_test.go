package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/syncbuf"
	"github.com/tcpclose-trace/tcpclose-trace/kubepods"
	"github.com/tcpclose-trace/tcpclose-trace/kubepods/kubepodstest"
)

// The soak's load, per round of soakRound: every workload of
// internal/testsupport/loadgen at a paced rate, alternately over IPv4 and IPv6, the
// unread closes from a container of a pod that is created for the round
// and removed after it, and a full-speed burst every soakBurstEvery rounds.
const (
	soakRound      = 10 * time.Second
	soakLoadFor    = 8 * time.Second
	soakBurstEvery = 6
	soakBurstConns = 5000
	soakScrapeGap  = time.Second // a Prometheus that scrapes every second
)

var soakLoads = []struct {
	w      loadgen.Workload
	conns  int
	rate   float64
	inPod  bool
	everyN int // 0: every round
}{
	{loadgen.Graceful, 2400, 300, false, 0},
	{loadgen.Unread, 800, 100, true, 0},
	{loadgen.LingerZero, 400, 50, false, 0},
	{loadgen.ClosedPort, 400, 50, false, 0},
	{loadgen.Burst, soakBurstConns, 0, true, soakBurstEvery},
}

// Growth allowed after the warm-up: the last third of the samples against
// the samples right after the warm-up.
const (
	soakGoroutineSlack = 3
	soakFDSlack        = 3
	soakRSSFactor      = 1.15
	soakRSSSlack       = 1 << 20
)

// soakSample is the daemon and the namespace after one round, the load
// finished.
type soakSample struct {
	at         time.Duration // since the start
	conns      int64         // connections made so far
	rss        int64         // VmRSS, bytes
	goroutines int           // go_goroutines
	fds        int           // process_open_fds
	cpu        float64       // process_cpu_seconds_total
	lines      int64         // log lines so far
	lost       float64       // ring records lost + events dropped
	scrapes    int64         // successful scrapes so far
	inexact    []string      // counters that differ from the kernel's
}

// TestSoak runs the daemon for TCPCLOSE_SOAK_MINUTES minutes (make soak)
// under mixed connection churn and pod churn in a private namespace, with a
// scrape every second. After each round it samples the daemon's RSS,
// goroutines, open fds and CPU, and compares its exact counters with the
// namespace's nstat deltas. It fails on any inexact counter, any failed
// scrape, and growth of goroutines, fds or RSS after the warm-up (the
// first fifth of the run), and prints a table of the samples.
func TestSoak(t *testing.T) {
	env := os.Getenv("TCPCLOSE_SOAK_MINUTES")
	if env == "" {
		t.Skip("skipped: the soak runs from `make soak` (TCPCLOSE_SOAK_MINUTES=N)")
	}
	minutes, err := strconv.ParseFloat(env, 64)
	if err != nil || minutes <= 0 || minutes > 24*60 {
		t.Fatalf("TCPCLOSE_SOAK_MINUTES=%q: want minutes in (0, 1440]", env)
	}
	runFor := time.Duration(minutes * float64(time.Minute))
	requireHost(t)
	root := requireCgroup2(t)
	bin := buildCLI(t)
	bench := buildBench(t)
	ns := newNamespace(t)
	dir := t.TempDir()
	makeCgroup(t, root, "kubepods.slice/kubepods-besteffort.slice") // removed at the end, if created here

	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + target
	var lines atomic.Int64
	var stderr syncbuf.Buffer
	// A by-pod slot for every round's pod: a slot holder that loses its
	// slot to a busier pod stops being exported (exporter.ByOwner), and the
	// series would no longer add up to the unread closes.
	pods := int(runFor/soakRound) + 2
	cmd := exec.Command(bin, append([]string{"serve", "--web.listen-address", target,
		"--netns", strconv.FormatUint(uint64(ns.Inode), 10), "--metrics.by-comm", "8", "--metrics.by-pod", strconv.Itoa(pods)},
		podFlags(root, dir)...)...)
	cmd.Stdout, cmd.Stderr = lineCounter{&lines}, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-waited
		}
	})
	waitReady(t, base, waited, &stderr)
	before, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var scrapes, scrapeErrs atomic.Int64
	var lastScrapeErr atomic.Value
	var scraper sync.WaitGroup
	scraper.Add(1)
	go func() {
		defer scraper.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for tick := time.NewTicker(soakScrapeGap); ; {
			select {
			case <-ctx.Done():
				tick.Stop()
				return
			case <-tick.C:
			}
			resp, err := client.Get(base + "/metrics")
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
			if err != nil {
				scrapeErrs.Add(1)
				lastScrapeErr.Store(err.Error())
				continue
			}
			scrapes.Add(1)
		}
	}()

	start := time.Now()
	var conns int64
	var samples []soakSample
	t.Logf("soak: %v of mixed churn, a round every %v; samples after each round", runFor, soakRound)
	t.Log(soakHeader)
	for round := 0; time.Since(start) < runFor; round++ {
		roundStart := time.Now()
		n, err := soakRoundLoad(ctx, t, bench, ns, root, dir, round)
		conns += n
		if err != nil {
			t.Errorf("round %d: %v", round, err)
			break
		}
		time.Sleep(300 * time.Millisecond) // the last resets and the collector's drain
		s := takeSoakSample(t, base, cmd.Process.Pid, ns, before)
		s.at, s.conns, s.lines, s.scrapes = time.Since(start), conns, lines.Load(), scrapes.Load()
		prev := soakSample{}
		if len(samples) > 0 {
			prev = samples[len(samples)-1]
		}
		samples = append(samples, s)
		t.Log(s.row(prev))
		for _, m := range s.inexact {
			t.Errorf("round %d: inexact counter: %s", round, m)
		}
		if t.Failed() {
			break
		}
		time.Sleep(time.Until(roundStart.Add(soakRound)))
	}
	cancel()
	scraper.Wait()

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("daemon exit: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Error("daemon still running 5 s after SIGTERM")
	}
	if n := scrapeErrs.Load(); n > 0 {
		t.Errorf("%d of %d scrapes failed; last: %v", n, n+scrapes.Load(), lastScrapeErr.Load())
	}
	checkSoakGrowth(t, samples)
	t.Logf("soak: %d rounds, %d connections, %d scrapes, %d log lines in %v", len(samples), conns,
		scrapes.Load(), lines.Load(), time.Since(start).Round(time.Second))
}

const soakHeader = "     t   conns   RSS MB  goroutines  fds   CPU s  CPU %  log lines  lost  scrapes  exact"

// row is the sample as a line of the table; CPU % is since prev.
func (s soakSample) row(prev soakSample) string {
	exact := "yes"
	if len(s.inexact) > 0 {
		exact = "NO"
	}
	pct := 0.0
	if d := (s.at - prev.at).Seconds(); d > 0 {
		pct = 100 * (s.cpu - prev.cpu) / d
	}
	return fmt.Sprintf("%6.0fs %7d %8.1f %11d %4d %7.2f %6.1f %10d %5.0f %8d  %s", s.at.Seconds(), s.conns,
		float64(s.rss)/(1<<20), s.goroutines, s.fds, s.cpu, pct, s.lines, s.lost, s.scrapes, exact)
}

// soakRoundLoad runs one round's loads in the namespace, at once, and
// returns the connections they made. The pod of the round is created
// before and removed, with its runtime state, after.
func soakRoundLoad(ctx context.Context, t *testing.T, bench string, ns *scenario.Namespace, root, dir string, round int) (int64, error) {
	t.Helper()
	u := randomHex(t, 16)
	uid := u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
	id := randomHex(t, 32)
	m := kubepods.Meta{Namespace: "soak", Pod: fmt.Sprintf("churn-%d", round), PodUID: uid, Container: "load"}
	if err := kubepodstest.WriteContainerdBundle(filepath.Join(dir, "containerd"), id, m, false); err != nil {
		return 0, err
	}
	podDir := filepath.Join(root, "kubepods.slice", "kubepods-besteffort.slice", "kubepods-besteffort-pod"+systemdUID(uid)+".slice")
	cgroup := filepath.Join(podDir, "cri-containerd-"+id+".scope")
	if err := os.MkdirAll(cgroup, 0o755); err != nil {
		return 0, fmt.Errorf("create cgroup: %w", err)
	}
	removePod := func() error {
		for _, p := range []string{cgroup, podDir} {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("remove cgroup: %w", err)
			}
		}
		return os.RemoveAll(filepath.Join(dir, "containerd", "io.containerd.runtime.v2.task", "k8s.io", id))
	}
	t.Cleanup(func() { _ = removePod() }) // after a failure; the round removes it otherwise

	ipv6 := round%2 == 1
	var wg sync.WaitGroup
	var mu sync.Mutex
	var total int64
	var errs []string
	for _, l := range soakLoads {
		if l.everyN > 0 && round%l.everyN != l.everyN-1 {
			continue
		}
		args := []string{"netns", "exec", ns.Name, bench, "load", "-w", string(l.w), "-n", strconv.Itoa(l.conns),
			"-d", soakLoadFor.String(), "-rate", fmt.Sprint(l.rate), fmt.Sprintf("-6=%v", ipv6)}
		name, argv := "ip", args
		if l.inPod {
			// The shell moves itself into the container's cgroup, then
			// becomes the load: every socket of it is the pod's.
			name, argv = "sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec ip "$@"`, cgroup}, args...)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			lctx, cancel := context.WithTimeout(ctx, soakLoadFor+30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(lctx, name, argv...).Output()
			var res loadgen.Result
			if err == nil {
				err = json.Unmarshal(out, &res)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
				}
				errs = append(errs, fmt.Sprintf("load %s: %v", l.w, err))
				return
			}
			total += res.Conns
		}()
	}
	wg.Wait()
	if err := removePod(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return total, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return total, nil
}

// takeSoakSample scrapes the daemon, reads its /proc entry and the
// namespace's counters, and compares the exact counters with the
// counters' deltas since before.
func takeSoakSample(t *testing.T, base string, pid int, ns *scenario.Namespace, before scenario.Counters) soakSample {
	t.Helper()
	after, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	mib := after.Delta(before)
	fams := scrapeFamilies(t, base+"/metrics")
	sum := func(name string, match map[string]string) float64 {
		v := 0.0
		mf := fams[name]
		if mf == nil {
			return 0
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := match[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				v += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v += m.GetGauge().GetValue()
			}
		}
		return v
	}
	s := soakSample{
		goroutines: int(sum("go_goroutines", nil)),
		fds:        int(sum("process_open_fds", nil)),
		cpu:        sum("process_cpu_seconds_total", nil),
		lost:       sum("tcpclose_ring_lost_records_total", nil) + sum("tcpclose_events_dropped_total", nil),
		rss:        vmRSS(t, pid),
	}
	unread := sum("tcpclose_closes_total", map[string]string{"kind": "unread_close"})
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"unread_close = TcpExtTCPAbortOnClose", unread, float64(mib["TcpExtTCPAbortOnClose"])},
		{"abort_close + data_after_close{socket=full} = TcpExtTCPAbortOnData",
			sum("tcpclose_closes_total", map[string]string{"kind": "abort_close"}) +
				sum("tcpclose_data_after_close_total", map[string]string{"socket": "full"}), float64(mib["TcpExtTCPAbortOnData"])},
		{"resets sent = TcpOutRsts", sum("tcpclose_resets_sent_total", nil), float64(mib["TcpOutRsts"])},
	} {
		if c.got != c.want {
			s.inexact = append(s.inexact, fmt.Sprintf("%s: %.0f, kernel %.0f", c.what, c.got, c.want))
		}
	}
	// Every unread close is a pod's (the round's container), gone or not:
	// with no event lost, the by-pod series (overflow included) add up.
	if byPod := sum("tcpclose_anomalies_by_pod_total", map[string]string{"kind": "unread_close"}); s.lost == 0 && byPod != unread {
		s.inexact = append(s.inexact, fmt.Sprintf("by-pod unread_close %.0f, unread_close %.0f", byPod, unread))
	}
	return s
}

// scrapeFamilies scrapes url and parses the text format.
func scrapeFamilies(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return fams
}

// vmRSS returns the resident set of process pid, in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// checkSoakGrowth fails when goroutines, fds or RSS grew after the
// warm-up: the last third of the samples against those just after it.
func checkSoakGrowth(t *testing.T, samples []soakSample) {
	t.Helper()
	warm := max(1, len(samples)/5)
	rest := samples[min(warm, len(samples)):]
	if len(rest) < 3 {
		t.Errorf("%d samples after the warm-up: too few to judge growth (run longer)", len(rest))
		return
	}
	third := max(1, len(rest)/3)
	early, late := rest[:third], rest[len(rest)-third:]
	peak := func(ss []soakSample, f func(soakSample) float64) float64 {
		v := f(ss[0])
		for _, s := range ss[1:] {
			v = max(v, f(s))
		}
		return v
	}
	for _, c := range []struct {
		what  string
		f     func(soakSample) float64
		limit func(early float64) float64
	}{
		{"goroutines", func(s soakSample) float64 { return float64(s.goroutines) }, func(e float64) float64 { return e + soakGoroutineSlack }},
		{"open fds", func(s soakSample) float64 { return float64(s.fds) }, func(e float64) float64 { return e + soakFDSlack }},
		{"RSS bytes", func(s soakSample) float64 { return float64(s.rss) }, func(e float64) float64 { return e*soakRSSFactor + soakRSSSlack }},
	} {
		e, l := peak(early, c.f), peak(late, c.f)
		t.Logf("growth: %s peak %.0f after the warm-up, %.0f in the last third (limit %.0f)", c.what, e, l, c.limit(e))
		if l > c.limit(e) {
			t.Errorf("%s grew: peak %.0f after the warm-up, %.0f in the last third (limit %.0f)", c.what, e, l, c.limit(e))
		}
	}
	cpu := (samples[len(samples)-1].cpu - samples[0].cpu) / (samples[len(samples)-1].at - samples[0].at).Seconds()
	conns := float64(samples[len(samples)-1].conns-samples[0].conns) / (samples[len(samples)-1].at - samples[0].at).Seconds()
	sorted := make([]float64, len(samples))
	for i, s := range samples {
		sorted[i] = float64(s.rss)
	}
	sort.Float64s(sorted)
	t.Logf("soak: CPU %.1f%% of one core at %.0f connections/s; RSS median %.1f MB, max %.1f MB", 100*cpu, conns,
		sorted[len(sorted)/2]/(1<<20), sorted[len(sorted)-1]/(1<<20))
}

// waitReady waits up to 30 s for /readyz to answer 200.
func waitReady(t *testing.T, base string, waited chan error, stderr *syncbuf.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-waited:
			t.Fatalf("daemon exited before it was ready: %v\n%s", err, stderr.String())
		default:
		}
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	t.Fatal("daemon not ready within 30 s")
}

// lineCounter counts the lines written to it and keeps none.
type lineCounter struct{ n *atomic.Int64 }

func (c lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(strings.Count(string(p), "\n")))
	return len(p), nil
}

// buildBench builds tools/tcpclose-bench, whose `load` runs internal/testsupport/loadgen.
func buildBench(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tcpclose-bench")
	if out, err := exec.Command("go", "build", "-o", bin, "../tools/tcpclose-bench").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

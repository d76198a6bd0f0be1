package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

func TestMain(m *testing.M) {
	scenario.MaybeRunHelper()
	os.Exit(m.Run())
}

// requireHost skips, with the reason, where the end-to-end suite cannot run.
func requireHost(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: the end-to-end suite loads BPF programs and creates network namespaces: run as root")
	}
	for _, tool := range []string{"ip", "nstat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: %s (iproute2) is not installed", tool)
		}
	}
}

// newNamespace creates a private network namespace removed when t ends.
func newNamespace(t *testing.T) *scenario.Namespace {
	t.Helper()
	ns, err := scenario.NewNamespace()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Close(); err != nil {
			t.Errorf("remove namespace: %v", err)
		}
	})
	return ns
}

// tracer runs a collector on one namespace and records every event.
type tracer struct {
	c       *collector.Collector
	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
	runErr  error

	mu     sync.Mutex
	events []collector.Event
}

func startTracer(t *testing.T, opts collector.Options) *tracer {
	t.Helper()
	c, err := collector.Open(opts)
	if err != nil {
		t.Fatalf("open collector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &tracer{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() {
		tr.done <- c.Run(ctx, func(ev *collector.Event) {
			tr.mu.Lock()
			tr.events = append(tr.events, *ev)
			tr.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		if err := tr.stop(); err != nil {
			t.Errorf("collector run: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("close collector: %v", err)
		}
	})
	return tr
}

// stop ends the run after draining the ring; later calls return the same error.
func (tr *tracer) stop() error {
	tr.stopped.Do(func() {
		tr.cancel()
		tr.runErr = <-tr.done
	})
	return tr.runErr
}

// mark returns the index of the next event.
func (tr *tracer) mark() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.events)
}

// since waits until the events after mark stop changing (the ring is
// drained every 50 ms and provisional resets are held one period), and
// returns them.
func (tr *tracer) since(mark int) []collector.Event {
	const quiet = 400 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	last, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		n := tr.mark()
		if n != last {
			last, lastChange = n, time.Now()
		} else if time.Since(lastChange) >= quiet {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.events[mark:])
}

// snapshot is the kernel's view before or after a scenario: the namespace's
// MIB counters and the programs' own counters.
type snapshot struct {
	mib  scenario.Counters
	bpf  collector.Counters
	took time.Time
}

func takeSnapshot(t *testing.T, ns *scenario.Namespace, tr *tracer) snapshot {
	t.Helper()
	mib, err := ns.Counters()
	if err != nil {
		t.Fatalf("nstat: %v", err)
	}
	c, err := tr.c.Counters()
	if err != nil {
		t.Fatalf("read BPF counters: %v", err)
	}
	return snapshot{mib: mib, bpf: c, took: time.Now()}
}

// bpfDelta is after minus before for the programs' counters.
func bpfDelta(after, before collector.Counters) collector.Counters { return after.Sub(&before) }

// checkKernelAgreement asserts that what was streamed, what the programs
// counted and what the namespace's kernel counted agree exactly.
// Graceful closes are streamed only with Options.All; they are always counted.
func checkKernelAgreement(t *testing.T, reasons *collector.Reasons, all bool, events []collector.Event, mib scenario.Counters, d collector.Counters) {
	t.Helper()
	streamed := map[collector.Kind]uint64{}
	var unread, unsent, refused uint64
	for _, ev := range events {
		streamed[ev.Kind]++
		unread += uint64(ev.UnreadBytes)
		unsent += uint64(ev.UnsentBytes)
		refused += uint64(ev.RefusedBytes)
	}
	if d.RingLost != 0 {
		t.Errorf("ring lost %d records", d.RingLost)
	}
	for _, k := range collector.Kinds() {
		if k == collector.KindGracefulClose && !all {
			continue
		}
		if streamed[k] != d.Kind(k) {
			t.Errorf("%s: %d streamed, %d counted in the kernel", k, streamed[k], d.Kind(k))
		}
	}
	if unread != d.UnreadBytes || unsent != d.UnsentBytes || refused != d.RefusedBytes {
		t.Errorf("bytes streamed unread/unsent/refused %d/%d/%d, counted %d/%d/%d",
			unread, unsent, refused, d.UnreadBytes, d.UnsentBytes, d.RefusedBytes)
	}
	if got, want := d.Kind(collector.KindUnreadClose), mib["TcpExtTCPAbortOnClose"]; got != want {
		t.Errorf("unread_close counted %d, TcpExtTCPAbortOnClose delta %d", got, want)
	}
	if got, want := d.AbortsOnData(), mib["TcpExtTCPAbortOnData"]; got != want {
		t.Errorf("abort_close + data_after_close of a full socket counted %d, TcpExtTCPAbortOnData delta %d", got, want)
	}
	var timeWait uint64
	for _, ev := range events {
		if ev.Kind == collector.KindDataAfterClose && ev.TimeWait {
			timeWait++
		}
	}
	if timeWait != d.TimeWaitRefusals {
		t.Errorf("data_after_close by TIME_WAIT sockets: %d streamed, %d counted in the kernel", timeWait, d.TimeWaitRefusals)
	}
	if abortOnData, ok := reasons.Value("TCP_ABORT_ON_DATA"); ok {
		// Where the kernel names reasons, it agrees on which aborts were on data.
		if got, want := d.ResetReasons[abortOnData], d.Kind(collector.KindDataAfterClose)-d.TimeWaitRefusals; got != want {
			t.Errorf("resets with reason TCP_ABORT_ON_DATA %d, data_after_close of a full socket %d", got, want)
		}
	}
	if got, want := d.ResetsSent(), mib["TcpOutRsts"]; got != want {
		t.Errorf("resets sent counted %d (by reason %v), TcpOutRsts delta %d", got, nonZero(reasons, d.ResetReasons[:]), want)
	}
}

func nonZero(reasons *collector.Reasons, byReason []uint64) string {
	var parts []string
	for v, n := range byReason {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", reasons.Name(uint16(v)), n))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// kernelSupport is what the tracer can do on this kernel.
func kernelSupport(t *testing.T) *collector.Support {
	t.Helper()
	s, err := collector.ProbeKernel()
	if err != nil {
		t.Fatalf("probe kernel: %v", err)
	}
	return s
}

// programMisses is, per program name, how many runs the kernel skipped
// because a BPF program was already running on that CPU.
type programMisses map[string]uint64

// recursionMisses reads the recursion-miss counts of the tracer's programs.
func recursionMisses(t *testing.T, tr *tracer) programMisses {
	t.Helper()
	ids, err := tr.c.ProgramIDs()
	if err != nil {
		t.Fatalf("program ids: %v", err)
	}
	m := programMisses{}
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			t.Fatalf("program %d: %v", id, err)
		}
		info, ierr := p.Info()
		st, serr := p.Stats()
		p.Close()
		if ierr != nil || serr != nil {
			t.Fatalf("program %d: info: %v, stats: %v", id, ierr, serr)
		}
		m[info.Name] += st.RecursionMisses
	}
	return m
}

// since formats m minus before, by program name.
func (m programMisses) since(before programMisses) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, m[n]-before[n])
	}
	return strings.Join(parts, " ")
}

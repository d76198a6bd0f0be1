// Package harness is what the end-to-end suites share: a host check, private
// network namespaces, a tracer run that records every event, snapshots of
// the kernel's counters and the exact agreement check between what was
// streamed, what the programs counted and what the namespace's kernel
// counted.
package harness

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

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// RequireHost skips, with the reason, where the end-to-end suites cannot run.
func RequireHost(t testing.TB) {
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

// NewNamespace creates a private network namespace removed when t ends.
func NewNamespace(t testing.TB) *scenario.Namespace {
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

// Tracer runs a collector and records every event.
type Tracer struct {
	// C is the running collector.
	C *collector.Collector

	cancel  context.CancelFunc
	done    chan error
	stopped sync.Once
	runErr  error

	mu     sync.Mutex
	events []collector.Event
}

// StartTracer opens a collector with opts and runs it until t ends.
func StartTracer(t testing.TB, opts collector.Options) *Tracer {
	t.Helper()
	c, err := collector.Open(opts)
	if err != nil {
		t.Fatalf("open collector: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &Tracer{C: c, cancel: cancel, done: make(chan error, 1)}
	go func() {
		tr.done <- c.Run(ctx, func(ev *collector.Event) {
			tr.mu.Lock()
			tr.events = append(tr.events, *ev)
			tr.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		if err := tr.Stop(); err != nil {
			t.Errorf("collector run: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("close collector: %v", err)
		}
	})
	return tr
}

// Stop ends the run after draining the ring; later calls return the same error.
func (tr *Tracer) Stop() error {
	tr.stopped.Do(func() {
		tr.cancel()
		tr.runErr = <-tr.done
	})
	return tr.runErr
}

// Mark returns the index of the next event.
func (tr *Tracer) Mark() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.events)
}

// Since waits until the events after mark stop changing (the ring is
// drained every 50 ms and provisional resets are held one period), and
// returns them.
func (tr *Tracer) Since(mark int) []collector.Event {
	const quiet = 400 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	last, lastChange := -1, time.Now()
	for time.Now().Before(deadline) {
		n := tr.Mark()
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

// Snapshot is the kernel's view before or after a scenario: the namespace's
// MIB counters and the programs' own counters.
type Snapshot struct {
	MIB  scenario.Counters
	BPF  collector.Counters
	Took time.Time
}

// TakeSnapshot reads the namespace's counters and the tracer's.
func TakeSnapshot(t testing.TB, ns *scenario.Namespace, tr *Tracer) Snapshot {
	t.Helper()
	mib, err := ns.Counters()
	if err != nil {
		t.Fatalf("nstat: %v", err)
	}
	c, err := tr.C.Counters()
	if err != nil {
		t.Fatalf("read BPF counters: %v", err)
	}
	return Snapshot{MIB: mib, BPF: c, Took: time.Now()}
}

// Deltas are after minus before: the namespace's MIB counters and the
// programs' counters.
func (after Snapshot) Deltas(before Snapshot) (scenario.Counters, collector.Counters) {
	return after.MIB.Delta(before.MIB), after.BPF.Sub(&before.BPF)
}

// CheckKernelAgreement asserts that what was streamed, what the programs
// counted and what the namespace's kernel counted agree exactly.
// Graceful closes are streamed only with Options.All; they are always counted.
func CheckKernelAgreement(t testing.TB, reasons *collector.Reasons, all bool, events []collector.Event, mib scenario.Counters, d collector.Counters) {
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
		// Every event counted is streamed or, over a budget, suppressed.
		if streamed[k]+d.Suppressed[k] != d.Kind(k) {
			t.Errorf("%s: %d streamed + %d suppressed, %d counted in the kernel", k, streamed[k], d.Suppressed[k], d.Kind(k))
		}
	}
	if d.SuppressedTotal() == 0 && (unread != d.UnreadBytes || unsent != d.UnsentBytes || refused != d.RefusedBytes) {
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
	if d.SuppressedTotal() == 0 && timeWait != d.TimeWaitRefusals {
		t.Errorf("data_after_close by TIME_WAIT sockets: %d streamed, %d counted in the kernel", timeWait, d.TimeWaitRefusals)
	}
	if abortOnData, ok := reasons.Value("TCP_ABORT_ON_DATA"); ok {
		// Where the kernel names reasons, it agrees on which aborts were on data.
		if got, want := d.ResetReasons[abortOnData], d.Kind(collector.KindDataAfterClose)-d.TimeWaitRefusals; got != want {
			t.Errorf("resets with reason TCP_ABORT_ON_DATA %d, data_after_close of a full socket %d", got, want)
		}
	}
	if got, want := d.ResetsSent(), mib["TcpOutRsts"]; got != want {
		t.Errorf("resets sent counted %d (by reason %v), TcpOutRsts delta %d", got, NonZeroReasons(reasons, d.ResetReasons[:]), want)
	}
}

// NonZeroReasons formats the counts by reset reason that are not zero, as
// "NAME=N,..." sorted.
func NonZeroReasons(reasons *collector.Reasons, byReason []uint64) string {
	var parts []string
	for v, n := range byReason {
		if n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", reasons.Name(uint16(v)), n))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// KernelSupport is what the tracer can do on this kernel.
func KernelSupport(t testing.TB) *collector.Support {
	t.Helper()
	s, err := collector.ProbeKernel()
	if err != nil {
		t.Fatalf("probe kernel: %v", err)
	}
	return s
}

package e2e

import (
	"os"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/harness"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

func TestMain(m *testing.M) {
	scenario.MaybeRunHelper()
	os.Exit(m.Run())
}

// The suite's short names for the shared harness (package harness).

func requireHost(t *testing.T) { t.Helper(); harness.RequireHost(t) }

func newNamespace(t *testing.T) *scenario.Namespace { t.Helper(); return harness.NewNamespace(t) }

// tracer runs a collector on one namespace and records every event.
type tracer struct {
	*harness.Tracer
	c *collector.Collector
}

func startTracer(t *testing.T, opts collector.Options) *tracer {
	t.Helper()
	tr := harness.StartTracer(t, opts)
	return &tracer{Tracer: tr, c: tr.C}
}

func (tr *tracer) stop() error                      { return tr.Stop() }
func (tr *tracer) mark() int                        { return tr.Mark() }
func (tr *tracer) since(mark int) []collector.Event { return tr.Since(mark) }

// snapshot is the kernel's view before or after a scenario: the namespace's
// MIB counters and the programs' own counters.
type snapshot struct {
	mib  scenario.Counters
	bpf  collector.Counters
	took time.Time
}

func takeSnapshot(t *testing.T, ns *scenario.Namespace, tr *tracer) snapshot {
	t.Helper()
	s := harness.TakeSnapshot(t, ns, tr.Tracer)
	return snapshot{mib: s.MIB, bpf: s.BPF, took: s.Took}
}

// bpfDelta is after minus before for the programs' counters.
func bpfDelta(after, before collector.Counters) collector.Counters { return after.Sub(&before) }

func checkKernelAgreement(t *testing.T, reasons *collector.Reasons, all bool, events []collector.Event, mib scenario.Counters, d collector.Counters) {
	t.Helper()
	harness.CheckKernelAgreement(t, reasons, all, events, mib, d)
}

// kernelSupport is what the tracer can do on this kernel.
func kernelSupport(t *testing.T) *collector.Support { t.Helper(); return harness.KernelSupport(t) }

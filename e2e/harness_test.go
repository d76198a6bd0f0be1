package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/harness"
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

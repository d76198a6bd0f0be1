// Package selftest checks, on the running kernel, that every detection of
// the tracer works: in a private network namespace it runs each close
// scenario on loopback and compares the events with what the scenario did
// and with the namespace's own kernel counters.
package selftest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/expect"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
)

// The report's rows beyond the detections the expected events prove
// (internal/expect): two of the run as a whole.
const (
	RowReasons  = "reset reasons"
	RowCounters = "kernel counters agree"
)

// Rows lists the report's rows in order.
func Rows() []string {
	return []string{expect.RowUnread, expect.RowUndrained, expect.RowAfterFinWait, expect.RowAfterTimeWait,
		expect.RowAfterFinWait1, expect.RowAbort, expect.RowResetReceived, expect.RowResetSent, expect.RowListener,
		expect.RowGraceful, expect.RowHandoff, expect.RowThread, expect.RowNoStorage, RowReasons, RowCounters}
}

// WhyNoStorageCompat is why a kernel that gets the compat build (before
// 5.12) cannot run the close without socket storage: that build keeps the
// socket's state in a map, which net.core.optmem_max does not limit.
const WhyNoStorageCompat = "kernel lacks socket storage in tracing programs (5.11): the tracer keeps socket state in a map, which optmem_max cannot refuse"

// Options change how the self-test runs.
type Options struct {
	// Families to test: "ipv4", "ipv6"; nil means both.
	Families []string
	// Drop discards streamed events of this kind before they are checked.
	// It exists for tests: it proves that a detection that stops working
	// makes the self-test fail. KindNone drops nothing.
	Drop collector.Kind
	// Wait bounds how long to wait for a scenario's events (0: 5 s).
	Wait time.Duration
	// Progress, if set, is told what happens: the namespace created, each
	// scenario as it starts.
	Progress func(msg string)
}

// Status is the outcome of one detection for one family.
type Status string

// Outcomes. NotAvailable means the kernel cannot provide it: not a failure.
const (
	OK           Status = selfreport.OK
	Failed       Status = selfreport.Failed
	NotAvailable Status = selfreport.NotAvailable
)

// Cell is one detection for one family, with the first reason it failed.
type Cell struct {
	Status Status
	Why    string
}

// Report is the outcome of a self-test.
type Report struct {
	Kernel    *Kernel // what the tracer does on this kernel
	Namespace string  // the private namespace it ran in
	Families  []string
	// Cells holds, per row and family, the outcome.
	Cells map[string]map[string]*Cell
}

// OK reports whether every detection this kernel can support works.
func (r *Report) OK() bool {
	for _, byFamily := range r.Cells {
		for _, c := range byFamily {
			if c.Status == Failed {
				return false
			}
		}
	}
	return true
}

func newReport(families []string) *Report {
	r := &Report{Families: families, Cells: map[string]map[string]*Cell{}}
	for _, row := range Rows() {
		r.Cells[row] = map[string]*Cell{}
		for _, f := range families {
			r.Cells[row][f] = &Cell{Status: OK}
		}
	}
	return r
}

// fail marks a cell failed, keeping the first reason.
func (r *Report) fail(row, family, why string) {
	c := r.Cells[row][family]
	if c.Status != Failed {
		c.Status, c.Why = Failed, why
	}
}

// failAll marks every cell failed with the same reason, except those the
// kernel cannot support anyway.
func (r *Report) failAll(why string) {
	for _, row := range Rows() {
		for _, f := range r.Families {
			if r.Cells[row][f].Status != NotAvailable {
				r.fail(row, f, why)
			}
		}
	}
}

// Run runs the self-test. The report is returned whatever failed; the error
// is set only when the run was interrupted (ctx ended) or could not clean
// up. The namespace is removed before Run returns.
func Run(ctx context.Context, opts Options) (rep *Report, err error) {
	families := opts.Families
	if len(families) == 0 {
		families = []string{"ipv4", "ipv6"}
	}
	if opts.Wait == 0 {
		opts.Wait = 5 * time.Second
	}
	rep = newReport(families)
	k := probeKernel()
	rep.Kernel = k
	if k.Problem != "" {
		rep.failAll(k.Problem)
		return rep, nil
	}
	rep.notAvailable(k)
	ns, err := scenario.NewNamespace()
	if err != nil {
		rep.failAll(fmt.Sprintf("no private network namespace: %v", err))
		return rep, nil
	}
	rep.Namespace = ns.Name
	if opts.Progress != nil {
		opts.Progress("created network namespace " + ns.Name)
	}
	defer func() {
		if cerr := ns.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove namespace: %w", cerr))
		}
	}()

	c, err := collector.Open(collector.Options{Netns: ns.Inode, All: true})
	if err != nil {
		rep.failAll(fmt.Sprintf("the tracer did not load: %v", err))
		return rep, nil
	}
	defer c.Close()
	k.loaded(c)
	s := &stream{drop: opts.Drop}
	runCtx, stop := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(runCtx, s.add) }()
	defer func() {
		stop()
		if rerr := <-runDone; rerr != nil {
			err = errors.Join(err, fmt.Errorf("tracer: %w", rerr))
		}
	}()

	ck := &checker{rep: rep, ns: ns, c: c, s: s, kernel: k.Resets, wait: opts.Wait}
	return rep, ck.all(ctx, families, opts.Progress)
}

// unsupported marks the rows of a scenario this host cannot run not
// available in family, where nothing failed.
func (r *Report) unsupported(rows []string, family, why string) {
	for _, row := range rows {
		if c := r.Cells[row][family]; c.Status == OK {
			c.Status, c.Why = NotAvailable, why
		}
	}
}

// notAvailable marks the cells of the detections kernel k cannot do.
func (r *Report) notAvailable(k *Kernel) {
	for _, f := range r.Families {
		if !k.Resets.ResetReasons {
			r.Cells[RowReasons][f] = &Cell{Status: NotAvailable,
				Why: "the kernel has no enum sk_rst_reason (added in 6.10): resets show reason unknown"}
		}
		if k.Compat {
			r.Cells[expect.RowNoStorage][f] = &Cell{Status: NotAvailable, Why: WhyNoStorageCompat}
		}
	}
}

// all checks every scenario in each family, telling progress (if not nil)
// before each, until ctx ends.
func (ck *checker) all(ctx context.Context, families []string, progress func(string)) error {
	for _, family := range families {
		for _, name := range scenario.Names() {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("interrupted: %w", err)
			}
			if progress != nil {
				progress(family + " " + name)
			}
			ck.scenario(family, name)
		}
	}
	return ctx.Err()
}

// stream collects the events of the run.
type stream struct {
	drop collector.Kind

	mu     sync.Mutex
	events []collector.Event
}

func (s *stream) add(ev *collector.Event) {
	if s.drop != collector.KindNone && ev.Kind == s.drop {
		return
	}
	s.mu.Lock()
	s.events = append(s.events, *ev)
	s.mu.Unlock()
}

func (s *stream) since(mark int) []collector.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]collector.Event(nil), s.events[mark:]...)
}

func (s *stream) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

// checker runs scenarios and fills the report.
type checker struct {
	rep    *Report
	ns     *scenario.Namespace
	c      *collector.Collector
	s      *stream
	kernel expect.Kernel // decides the reasons the events must carry
	wait   time.Duration
}

// settle is how long to keep collecting after the expected events arrived:
// the ring is drained every 50 ms and provisional resets are held one more
// period, so an unexpected event shows within it.
const settle = 300 * time.Millisecond

// scenario runs one scenario and checks its events and counters.
func (ck *checker) scenario(family, name string) {
	finTimeout := "60" // the default: an orphan in FIN_WAIT2 becomes a TIME_WAIT mini-socket
	if name == "undrained_fin_wait" {
		finTimeout = "120" // above 60 s the orphan stays a full FIN_WAIT2 socket
	}
	rows := expect.Rows(name)
	if len(rows) == 0 {
		rows = []string{RowCounters}
	}
	failRows := func(why string) {
		for _, row := range rows {
			ck.rep.fail(row, family, why)
		}
	}
	if err := ck.ns.Sysctl("net.ipv4.tcp_fin_timeout", finTimeout); err != nil {
		failRows(err.Error())
		return
	}
	mark := ck.s.mark()
	before, bpfBefore, err := ck.counters()
	if err != nil {
		failRows(err.Error())
		return
	}
	if name == "no_storage" && ck.rep.Cells[expect.RowNoStorage][family].Why == WhyNoStorageCompat {
		return
	}
	res, err := scenario.Run(ck.ns, name, family)
	if errors.Is(err, scenario.ErrUnsupported) {
		ck.rep.unsupported(rows, family, err.Error())
		return
	}
	if err != nil {
		failRows(err.Error())
		return
	}
	wants := expect.Events(ck.kernel, name, res)
	events := ck.collect(mark, wants)
	after, bpfAfter, err := ck.counters()
	if err != nil {
		failRows(err.Error())
		return
	}
	ck.match(family, name, res, wants, events)
	if msg := agree(events, after.Delta(before), bpfAfter.ResetsSent()-bpfBefore.ResetsSent()); msg != "" {
		ck.rep.fail(RowCounters, family, name+": "+msg)
	}
}

// match fails the row of each event wanted and not seen, and of each
// event seen and not wanted.
func (ck *checker) match(family, name string, res *scenario.Result, wants []expect.Event, events []collector.Event) {
	unmatched := append([]collector.Event(nil), events...)
	for _, w := range wants {
		i := w.Find(unmatched, res)
		if i < 0 {
			ck.rep.fail(w.Row, family, fmt.Sprintf("%s: %s", name, w.Missing(unmatched, res)))
			continue
		}
		unmatched = append(unmatched[:i], unmatched[i+1:]...)
	}
	for _, ev := range unmatched {
		row := expect.RowOf(name, &ev)
		if row == "" {
			row = RowCounters
		}
		ck.rep.fail(row, family, fmt.Sprintf("%s: unexpected %s", name, expect.Describe(&ev, res)))
	}
}

// counters reads the namespace's counters and the programs' own.
func (ck *checker) counters() (scenario.Counters, collector.Counters, error) {
	mib, err := ck.ns.Counters()
	if err != nil {
		return nil, collector.Counters{}, err
	}
	bpf, err := ck.c.Counters()
	if err != nil {
		return nil, collector.Counters{}, fmt.Errorf("read the programs' counters: %w", err)
	}
	return mib, bpf, nil
}

// collect waits until as many events as expected arrived (or the wait
// passed), then a little longer for unexpected ones, and returns them.
func (ck *checker) collect(mark int, wants []expect.Event) []collector.Event {
	deadline := time.Now().Add(ck.wait)
	for time.Now().Before(deadline) && ck.s.mark()-mark < len(wants) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(settle)
	return ck.s.since(mark)
}

// agree compares what was streamed with the namespace's counters: every
// unread_close is a TCPAbortOnClose; every abort_close and every
// data_after_close on a full socket a TCPAbortOnData; and every reset the
// events imply is in TcpOutRsts, as are the resets the programs counted.
func agree(events []collector.Event, mib scenario.Counters, bpfResets uint64) string {
	var onClose, onData, rsts uint64
	for _, ev := range events {
		switch ev.Kind {
		case collector.KindUnreadClose:
			onClose++
			rsts++
		case collector.KindAbortClose:
			onData++
			rsts++
		case collector.KindDataAfterClose:
			if !ev.TimeWait {
				onData++
			}
			rsts++
		case collector.KindResetSent:
			rsts++
		}
	}
	var bad []string
	check := func(what string, got uint64, counter string) {
		if got != mib[counter] {
			bad = append(bad, fmt.Sprintf("%s %d but %s +%d", what, got, counter, mib[counter]))
		}
	}
	check("unread_close events", onClose, "TcpExtTCPAbortOnClose")
	check("abort_close + data_after_close (full socket) events", onData, "TcpExtTCPAbortOnData")
	check("events with a reset sent", rsts, "TcpOutRsts")
	check("resets counted by the programs", bpfResets, "TcpOutRsts")
	return strings.Join(bad, "; ")
}

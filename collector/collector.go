// Package collector loads the kernel programs, attaches them, reads the ring
// buffer, decodes and correlates records, and hands typed events to a sink.
package collector

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
	"github.com/tcpclose-trace/tcpclose-trace/correlate"
)

// Options select what is traced. Zero values mean "everything".
type Options struct {
	PID   uint32 // only sockets owned by this process (thread-group id)
	Comm  string // only sockets owned by a task with this comm (at most MaxComm bytes)
	Port  uint16 // only connections with this port at either end
	Netns uint32 // only this network namespace (inode number)
	All   bool   // also stream graceful closes
	// Budget is how many events of each kind may be streamed per second;
	// the rest are counted (exactly, as ever) and counted as suppressed,
	// with their sources (StormSources). 0: no budget. The kernel splits
	// it over the CPUs, so one CPU streams at most Budget/CPUs per kind.
	Budget int
	// Stacks captures the closing task's user stack for the closes that
	// lose data or skip the drain (Event.StackID); off, it costs nothing.
	Stacks bool

	RingBytes    int           // ring buffer size; a power of two from a page to MaxRingBytes, 0 for 4 MiB
	WakeupBytes  int           // ring fill that wakes the reader before its period; 0 for a quarter, -1 never
	QueueLen     int           // events buffered between reader and sink; 0 for 16384
	DrainEvery   time.Duration // ring polling period; 0 for 50ms
	TrackSockets int           // correlation capacity; 0 for 65536
	TrackTTL     time.Duration // correlation age limit; 0 for 2m
	Debug        bool          // show the whole verifier log on rejection
}

func (o *Options) setDefaults() {
	if o.RingBytes == 0 {
		o.RingBytes = 4 << 20
	}
	if o.QueueLen == 0 {
		o.QueueLen = 16384
	}
	if o.DrainEvery == 0 {
		o.DrainEvery = 50 * time.Millisecond
	}
	if o.TrackSockets == 0 {
		o.TrackSockets = 65536
	}
	if o.TrackTTL == 0 {
		o.TrackTTL = 2 * time.Minute
	}
}

// MaxComm is the longest Options.Comm: the kernel keeps a task's name in
// 16 bytes, the last one a NUL.
const MaxComm = len(bpf.TcpcloseConfig{}.FilterComm) - 1

// MaxRingBytes is the largest ring buffer Options.RingBytes may ask for.
const MaxRingBytes = 1 << 30

// Validate checks the options as Open would; zero values (the defaults)
// are valid. The command line checks its flags with it too.
func (o *Options) Validate() error {
	if o.Budget < 0 {
		return fmt.Errorf("budget %d is negative", o.Budget)
	}
	if len(o.Comm) > MaxComm {
		return fmt.Errorf("comm %q is longer than %d bytes: the kernel keeps only %d", o.Comm, MaxComm, MaxComm)
	}
	if r := o.RingBytes; r != 0 && (r < os.Getpagesize() || r > MaxRingBytes || r&(r-1) != 0) {
		return fmt.Errorf("ring size %d is not a power of two from a page (%d bytes) to 1 GiB", r, os.Getpagesize())
	}
	return nil
}

// Stats are the collector's own counts.
type Stats struct {
	Decoded     uint64 // records read from the ring
	SinkDropped uint64 // events dropped because the sink fell behind
	Evictions   uint64 // correlation entries evicted for lack of room
	Expired     uint64 // correlation entries aged out
	// SkippedRuns is how many times the kernel did not run one of the
	// programs because a BPF program was already running on that CPU (a
	// softirq that interrupted it, or another tool's program): what those
	// runs would have counted is missing from the counters. Read from the
	// kernel's per-program recursion_misses (5.12+; 0 before).
	SkippedRuns uint64
}

// Collector owns the loaded programs and their links.
type Collector struct {
	opts    Options
	coll    *ebpf.Collection   // the maps and the tracepoint programs
	extra   []*ebpf.Collection // function programs, loaded one by one
	progs   map[string]*ebpf.Program
	hooks   []hook   // attached, in order
	lost    []string // what this kernel cannot show, and why
	links   []link.Link
	decoder Decoder
	tracker *correlate.Tracker
	// stormSeen is the storm table as StormSources last read it.
	stormSeen map[bpf.TcpcloseStormKey]uint64
	// oldSockets is how many sockets made before the tracer got an owner.
	oldSockets int

	decoded     atomic.Uint64
	sinkDropped atomic.Uint64
	evictions   atomic.Uint64
	expired     atomic.Uint64
	closeOnce   sync.Once
	wakeupBytes int // the ring fill at which the kernel wakes the reader; 0: never
}

// Open checks the host, loads and attaches the programs. On error nothing
// stays loaded or attached.
func Open(opts Options) (_ *Collector, err error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	if err := checkCapabilities(); err != nil {
		return nil, err
	}
	plan, err := planKernel()
	if err != nil {
		return nil, err
	}

	spec := plan.object
	if err := setVariables(spec, &opts); err != nil {
		return nil, err
	}
	spec.Maps[bpf.TcpcloseMapEvents].MaxEntries = uint32(opts.RingBytes)
	sizeStacks(spec, &opts)

	c := &Collector{opts: opts, tracker: correlate.New(opts.TrackSockets, opts.TrackTTL), lost: plan.lost}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if err := c.load(spec, plan.btf, plan.use); err != nil {
		return nil, err
	}
	if err := c.attach(plan.use); err != nil {
		return nil, err
	}
	c.learnOwners(spec, plan.btf)
	c.decoder = Decoder{Reasons: plan.reasons, BootTime: bootTime()}
	c.wakeupBytes = int(wakeupBytes(&opts))
	releaseLoadGarbage()
	return c, nil
}

// releaseLoadGarbage collects what loading left behind and returns it to
// the kernel. Reading the kernel's BTF and loading the programs allocate
// several megabytes that are garbage once they are loaded; left to the
// collector, the heap would grow to twice that before the first collection
// and keep the pages resident: about 8 MB of the tracer's resident memory
// for as long as it runs.
func releaseLoadGarbage() {
	debug.FreeOSMemory() // a forced collection, then the pages go back
}

// loadSpec returns the programs' build for the kernel: the default one, or
// the compat one (see bpf/tcpclose.c, TCPCLOSE_COMPAT).
func loadSpec(compat bool) (*ebpf.CollectionSpec, error) {
	if compat {
		return bpf.LoadTcpcloseCompat()
	}
	return bpf.LoadTcpclose()
}

// wakeupBytes is the ring fill at which the kernel wakes the reader before
// its period ends: a quarter of the ring unless set; 0 for never.
func wakeupBytes(o *Options) uint64 {
	switch {
	case o.WakeupBytes < 0:
		return 0
	case o.WakeupBytes > 0:
		return uint64(o.WakeupBytes)
	}
	return uint64(o.RingBytes / 4)
}

// setVariables sets the programs' options (struct config in
// bpf/tcpclose.c) before load.
func setVariables(spec *ebpf.CollectionSpec, o *Options) error {
	cfg := bpf.TcpcloseConfig{
		WakeupBytes:    wakeupBytes(o),
		FilterPid:      o.PID,
		FilterNetns:    o.Netns,
		BudgetPerCpu:   budgetPerCPU(o.Budget),
		FilterPort:     o.Port,
		FilterCommLen:  uint8(len(o.Comm)),
		StreamGraceful: o.All,
		CaptureStacks:  o.Stacks,
	}
	for i := range len(o.Comm) {
		cfg.FilterComm[i] = int8(o.Comm[i])
	}
	vs, ok := spec.Variables[bpf.TcpcloseVarCfg]
	if !ok {
		return fmt.Errorf("BPF object has no variable %s", bpf.TcpcloseVarCfg)
	}
	if err := vs.Set(cfg); err != nil {
		return fmt.Errorf("set %s: %w", bpf.TcpcloseVarCfg, err)
	}
	return nil
}

// load creates the maps and loads the programs of the hooks in use. The
// tracepoint programs load together, or the tracer cannot run; each function
// program loads on its own, and one the kernel refuses (no trampolines) is
// reported as lost, not fatal.
func (c *Collector) load(spec *ebpf.CollectionSpec, kernel *btf.Spec, use []hook) error {
	opts := ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernel}}
	base := spec.Copy()
	for name := range spec.Programs {
		if i := slices.IndexFunc(use, func(h hook) bool { return h.program == name }); i < 0 || use[i].what != "tracepoint" {
			delete(base.Programs, name)
		}
	}
	coll, err := ebpf.NewCollectionWithOptions(base, opts)
	if err != nil {
		return c.loadError(err)
	}
	c.coll = coll
	c.progs = maps.Clone(coll.Programs)

	opts.MapReplacements = coll.Maps
	for _, h := range use {
		if h.what == "tracepoint" {
			continue
		}
		one := spec.Copy()
		one.Programs = map[string]*ebpf.ProgramSpec{h.program: spec.Programs[h.program]}
		extra, err := ebpf.NewCollectionWithOptions(one, opts)
		if err != nil {
			c.lost = append(c.lost, fmt.Sprintf("kernel refused a trampoline on %s (%s): %s", h.target, cause(err), h.lost))
			continue
		}
		c.extra = append(c.extra, extra)
		c.progs[h.program] = extra.Programs[h.program]
	}
	return nil
}

// loadError words a load failure, with the verifier's log trimmed unless debugging.
func (c *Collector) loadError(err error) error {
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		if c.opts.Debug {
			return fmt.Errorf("BPF verifier rejected the programs: %+v", verr)
		}
		return fmt.Errorf("BPF verifier rejected the programs (--debug shows the whole log): %-20v", verr)
	}
	return fmt.Errorf("load BPF programs: %w", err)
}

// cause is the kernel's own word for a failure (its errno) where there is
// one, else the error's first line: the library's hints about locked
// memory do not apply to a refused trampoline.
func cause(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// attach links every loaded program in hook order. A function program that
// does not attach is reported as lost, like one that did not load.
func (c *Collector) attach(use []hook) error {
	for _, h := range use {
		p, ok := c.progs[h.program]
		if !ok {
			continue // an optional program that did not load
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil && h.what != "tracepoint" {
			c.lost = append(c.lost, fmt.Sprintf("kernel refused a trampoline on %s (attach: %s): %s", h.target, cause(err), h.lost))
			continue
		}
		if err != nil {
			return fmt.Errorf("attach to %s %s: %w", h.what, h.target, err)
		}
		c.links = append(c.links, l)
		c.hooks = append(c.hooks, h)
	}
	return nil
}

// bootTime is the wall-clock time at which CLOCK_BOOTTIME was zero.
func bootTime() time.Time {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Now().Add(-time.Duration(ts.Nano()))
}

// Counters reads the kernel's exact totals.
func (c *Collector) Counters() (Counters, error) {
	return readCounters(c.coll.Maps[bpf.TcpcloseMapCounters])
}

// Lost says what this kernel cannot show and why, one line each: optional
// hooks it lacks or refused. Empty when every detection works.
func (c *Collector) Lost() []string { return slices.Clone(c.lost) }

// Hooks names the attached hooks ("tracepoint inet_sock_set_state", ...).
func (c *Collector) Hooks() []string {
	names := make([]string, len(c.hooks))
	for i, h := range c.hooks {
		names[i] = h.String()
	}
	return names
}

// Stats returns the collector's own counts.
func (c *Collector) Stats() Stats {
	return Stats{
		Decoded:     c.decoded.Load(),
		SinkDropped: c.sinkDropped.Load(),
		Evictions:   c.evictions.Load(),
		Expired:     c.expired.Load(),
		SkippedRuns: c.skippedRuns(),
	}
}

// skippedRuns sums the programs' recursion misses.
func (c *Collector) skippedRuns() uint64 {
	var n uint64
	for _, p := range c.progs {
		if st, err := p.Stats(); err == nil {
			n += st.RecursionMisses
		}
	}
	return n
}

// Reasons returns the kernel's reset reason names.
func (c *Collector) Reasons() *Reasons { return c.decoder.Reasons }

// Attached returns how many programs are attached: every program this
// kernel needs once Open succeeded (6 on most kernels), 0 after Close.
func (c *Collector) Attached() int { return len(c.links) }

// Close detaches and unloads everything. It is safe to call more than once.
func (c *Collector) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		for i := len(c.links) - 1; i >= 0; i-- {
			errs = append(errs, c.links[i].Close())
		}
		c.links = nil
		for _, e := range c.extra {
			e.Close()
		}
		if c.coll != nil {
			c.coll.Close()
		}
	})
	return errors.Join(errs...)
}

// Run streams events to sink until ctx is done, then drains what the ring
// still holds and returns. sink runs on its own goroutine: a slow sink makes
// the collector drop (and count) events, never stall the ring reader.
func (c *Collector) Run(ctx context.Context, sink func(*Event)) error {
	return c.RunBatches(ctx, sink, nil)
}

// RunBatches is Run for a sink that buffers its output: events come in
// batches (what one drain of the ring read, in pieces of at most batchLen),
// and flush, if not nil, is called once the sink has caught up with the
// reader, so output is written in large pieces and never later than one
// drain period. At most Options.QueueLen events wait for the sink; past
// that, whole batches are dropped and counted in Stats.SinkDropped.
func (c *Collector) RunBatches(ctx context.Context, sink func(*Event), flush func()) error {
	nBatches := max(2, (c.opts.QueueLen+batchLen-1)/batchLen)
	q := &batchQueue{full: make(chan *batch, nBatches), left: nBatches}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range q.full {
			for i := range b.events {
				sink(&b.events[i])
			}
			if flush != nil && len(q.full) == 0 {
				flush()
			}
			b.events = b.events[:0]
			q.put(b)
		}
	}()
	err := c.read(ctx, q)
	close(q.full)
	<-done
	return err
}

// maxProvisional bounds the reset_received events held back for one drain period.
const maxProvisional = 4096

// provisional is a reset_received held until the next drain period, unless a
// data_after_close on the same socket shows it was the kernel's own abort.
type provisional struct {
	ev    Event
	cycle uint64
}

func (c *Collector) read(ctx context.Context, q *batchQueue) error {
	// The ring is read through a mapping of its own (ring.go), made and
	// unmapped here: Close never pulls it from under a running reader.
	events := c.coll.Maps[bpf.TcpcloseMapEvents]
	rb, err := openRing(events.FD(), int(events.MaxEntries()))
	if err != nil {
		return err
	}
	defer rb.close()
	q.dropped = &c.sinkDropped
	held := make(map[uint64]provisional)
	flush := func(before uint64) {
		for cookie, p := range held {
			if p.cycle < before {
				q.add(&p.ev)
				delete(held, cookie)
			}
		}
	}
	// Between drains the reader sleeps until the period ends, or the
	// kernel's wakeup once the ring fills to wakeup_bytes, or ctx ends.
	ringFD := -1
	if c.wakeupBytes > 0 {
		ringFD = events.FD()
	}
	clock, err := newDrainClock(c.opts.DrainEvery, ringFD)
	if err != nil {
		return err
	}
	defer clock.Close()
	defer context.AfterFunc(ctx, clock.Fire)()
	for cycle := uint64(1); ; cycle++ {
		stopping := ctx.Err() != nil
		var decoded uint64
		for {
			raw, ok, err := rb.next()
			if err != nil {
				q.send()
				return fmt.Errorf("read ring buffer: %w", err)
			}
			if !ok {
				break
			}
			ev := q.slot()
			if err := c.decoder.Decode(raw, ev); err != nil {
				q.send()
				return err
			}
			decoded++
			c.correlate(ev)
			switch {
			case ev.provisional && ev.Cookie != 0 && len(held) < maxProvisional:
				held[ev.Cookie] = provisional{ev: *ev, cycle: cycle}
			case ev.localAbort:
				delete(held, ev.Cookie)
				q.commit()
			default:
				q.commit()
			}
		}
		rb.release()
		c.decoded.Add(decoded)
		if stopping {
			flush(cycle + 1)
			q.send()
			return nil
		}
		if len(held) > 0 {
			flush(cycle)
		}
		q.send()
		if err := clock.Wait(); err != nil {
			return err
		}
	}
}

// correlate joins ev with what is known of its socket. Only undrained
// closes are remembered: the data_after_close that may follow (perhaps from
// the socket's TIME_WAIT successor, after the socket itself is gone) is told
// with the close's owner, the time since it and the close itself
// (Event.UndrainedClose). Every other event is joined read-only, so
// connection churn adds no correlation state.
func (c *Collector) correlate(ev *Event) {
	if ev.Cookie == 0 {
		return
	}
	switch ev.Kind {
	case KindUndrainedClose:
		cl := correlate.Close{Time: ev.Time, State: uint8(ev.State), Stack: ev.StackID}
		if ev.OwnerKnown {
			cl.Owner = &correlate.Owner{PID: ev.PID, TID: ev.TID, Comm: ev.Comm, Thread: ev.Thread, CgroupID: ev.CgroupID}
		}
		if ev.ShutWR {
			cl.Flags |= closeShutWR
		}
		if ev.NoStorage {
			cl.Flags |= closeNoStorage
		}
		c.tracker.MarkClosed(ev.Cookie, cl)
		c.evictions.Store(c.tracker.Evictions())
		c.expired.Store(c.tracker.Expired())
	case KindDataAfterClose:
		if prev, ok := c.tracker.Get(ev.Cookie); ok {
			ev.SinceClose = ev.Time.Sub(prev.Closed)
			fillOwner(ev, prev)
			if ev.StackID == 0 { // the refused data points at the close that skipped the drain
				ev.StackID = prev.Stack
			}
			cl := Event{Time: prev.Closed, State: State(prev.State), StackID: prev.Stack, ShutWR: prev.Flags&closeShutWR != 0,
				NoStorage: prev.Flags&closeNoStorage != 0, OwnerKnown: prev.HasOwner, PID: prev.Owner.PID,
				TID: prev.Owner.TID, Comm: prev.Owner.Comm, Thread: prev.Owner.Thread, CgroupID: prev.Owner.CgroupID}
			ev.SetUndrainedClose(&cl)
			c.tracker.Forget(ev.Cookie)
		}
	default:
		if !ev.OwnerKnown && c.tracker.Len() > 0 {
			if prev, ok := c.tracker.Get(ev.Cookie); ok {
				fillOwner(ev, prev)
			}
		}
	}
}

// The flags of an undrained close kept in the tracker.
const (
	closeShutWR    = 1 << iota // Event.ShutWR
	closeNoStorage             // Event.NoStorage
)

// fillOwner gives ev the owner remembered for its socket when the kernel
// did not know it.
func fillOwner(ev *Event, e correlate.Entry) {
	if ev.OwnerKnown || !e.HasOwner {
		return
	}
	ev.PID, ev.TID, ev.Comm, ev.Thread, ev.CgroupID = e.Owner.PID, e.Owner.TID, e.Owner.Comm, e.Owner.Thread, e.Owner.CgroupID
	ev.OwnerKnown = true
}

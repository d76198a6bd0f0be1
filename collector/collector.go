// Package collector loads the kernel programs, attaches them, reads the ring
// buffer, decodes and correlates records, and hands typed events to a sink.
package collector

import (
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

	// ForceKprobes is for tests: the tracer acts as if the kernel lacked
	// the send and receive length tracepoints (6.3) and refused every
	// trampoline, so that kprobes stand in for the fentry programs, as on
	// a kernel without trampolines. Resets keep their tracepoint on kernels
	// where it fires for every reset (6.10+).
	ForceKprobes bool
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
	opts  Options
	coll  *ebpf.Collection   // the maps and the tracepoint programs
	extra []*ebpf.Collection // function programs (fentry or kprobe), loaded one by one
	// spec and loadOpts load the function programs (attach), with coll's maps.
	spec     *ebpf.CollectionSpec
	loadOpts ebpf.CollectionOptions
	// usersProbed: a kprobe records the users of sockets (setUsersProbed).
	usersProbed bool
	progs       map[string]*ebpf.Program
	hooks       []hook   // attached, in order
	lost        []string // what this kernel cannot show, and why
	probed      []string // which kprobes stand in for refused trampolines, and why
	links       []link.Link
	decoder     Decoder
	tracker     *tracker // the per-socket join
	// stormSeen is the storm table as StormSources last read it.
	stormSeen map[bpf.TcpcloseStormKey]uint64
	// oldSockets is how many sockets made before the tracer got an owner.
	oldSockets int

	decoded     atomic.Uint64
	sinkDropped atomic.Uint64
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
	plan, err := planKernel(opts.ForceKprobes)
	if err != nil {
		return nil, err
	}

	spec := plan.object
	if err := setVariables(spec, &opts); err != nil {
		return nil, err
	}
	spec.Maps[bpf.TcpcloseMapEvents].MaxEntries = uint32(opts.RingBytes)
	sizeStacks(spec, &opts)
	sizeProbedUsers(spec, plan.use)

	c := &Collector{opts: opts, tracker: newTracker(opts.TrackSockets, opts.TrackTTL), lost: plan.lost}
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

// load creates the maps and loads the tracepoint programs of the hooks in
// use, which load together, or the tracer cannot run. The function programs
// load one by one as attach gets to them.
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
	c.spec, c.loadOpts = spec, opts
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

// attach links every planned hook in order. A tracepoint that does not
// attach is an error; a function hook goes to attachFunction.
func (c *Collector) attach(use []hook) error {
	for _, h := range use {
		if h.what != "tracepoint" {
			c.attachFunction(h, c.attachOne)
			continue
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: c.progs[h.program]})
		if err != nil {
			return fmt.Errorf("attach to %s %s: %w", h.what, h.target, err)
		}
		c.links = append(c.links, l)
		c.hooks = append(c.hooks, h)
	}
	return nil
}

// attachFunction attaches a function hook h with try: its fentry program;
// where the kernel refuses that (no trampolines: the program does not load
// or attach), the hook's kprobe, as the hook "kprobe FUNCTION". What neither
// gives is reported as lost, not fatal.
func (c *Collector) attachFunction(h hook, try func(h hook) error) {
	why := "not tried: Options.ForceKprobes"
	if !c.opts.ForceKprobes {
		err := try(h)
		if err == nil {
			return
		}
		why = err.Error()
	}
	if h.probe == "" {
		c.lost = append(c.lost, fmt.Sprintf("kernel refused a trampoline on %s (%s): %s", h.target, why, h.lost))
		return
	}
	// The tracepoint programs read the users the probe records once this
	// is set; set first, so that none is missed.
	had := c.usersProbed
	if h.users {
		c.setUsersProbed(true)
	}
	kh := h
	kh.what, kh.program, kh.probe = "kprobe", h.probe, ""
	if err := try(kh); err != nil {
		c.setUsersProbed(had)
		c.lost = append(c.lost, fmt.Sprintf("kernel refused a trampoline on %s (%s) and a kprobe (%s): %s", h.target, why, err, h.lost))
		return
	}
	c.probed = append(c.probed, fmt.Sprintf("kprobe on %s: the kernel refused its trampoline (%s)", h.target, why))
}

// attachOne loads the program of hook h alone (with the maps of coll) and
// attaches it: as a kprobe on h.target, or with its own attach type. The
// error says which step failed, in the kernel's words.
func (c *Collector) attachOne(h hook) error {
	one := c.spec.Copy()
	one.Programs = map[string]*ebpf.ProgramSpec{h.program: c.spec.Programs[h.program]}
	coll, err := ebpf.NewCollectionWithOptions(one, c.loadOpts)
	if err != nil {
		return fmt.Errorf("load: %s", cause(err))
	}
	p := coll.Programs[h.program]
	var l link.Link
	if h.what == "kprobe" {
		l, err = link.Kprobe(h.target, p, nil)
	} else {
		l, err = link.AttachTracing(link.TracingOptions{Program: p})
	}
	if err != nil {
		coll.Close()
		return fmt.Errorf("attach: %s", cause(err))
	}
	c.extra = append(c.extra, coll)
	c.progs[h.program] = p
	c.links = append(c.links, l)
	c.hooks = append(c.hooks, h)
	return nil
}

// setUsersProbed tells the tracepoint programs whether a kprobe records
// the users of sockets (users_probed in bpf/tcpclose.c).
func (c *Collector) setUsersProbed(on bool) {
	if on == c.usersProbed {
		return
	}
	c.usersProbed = on
	if c.coll == nil {
		return // a test of attachFunction
	}
	var val uint32
	if on {
		val = 1
	}
	v, ok := c.coll.Variables[bpf.TcpcloseVarUsersProbed]
	if !ok {
		c.lost = append(c.lost, "BPF object has no variable "+bpf.TcpcloseVarUsersProbed+": "+ownerOfAccepted)
		return
	}
	if err := v.Set(val); err != nil {
		c.lost = append(c.lost, fmt.Sprintf("set %s: %v: %s", bpf.TcpcloseVarUsersProbed, err, ownerOfAccepted))
	}
}

// probedUserEntries is the room for the users kprobes record, where the
// kernel may need the kprobes on tcp_sendmsg and tcp_recvmsg (before 6.3):
// each entry waits for the socket's first event or its end.
const probedUserEntries = 16384

// sizeProbedUsers gives probed_users its room only where a kprobe may
// record users: the kernel needs the hooks on tcp_sendmsg and tcp_recvmsg.
func sizeProbedUsers(spec *ebpf.CollectionSpec, use []hook) {
	if ms, ok := spec.Maps[bpf.TcpcloseMapProbedUsers]; ok && slices.ContainsFunc(use, func(h hook) bool { return h.users }) {
		ms.MaxEntries = probedUserEntries
	}
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

// Kprobes says which kprobes stand in for function hooks whose trampolines
// the kernel refused, and why, one line each; empty where fentry works.
func (c *Collector) Kprobes() []string { return slices.Clone(c.probed) }

// UsersProbed says whether kprobes record the users of sockets in a map of
// the tracer's own (where the kernel refused the trampolines on tcp_sendmsg
// and tcp_recvmsg): sockets without storage then still have owners.
func (c *Collector) UsersProbed() bool { return c.usersProbed }

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
		Evictions:   c.tracker.evictions.Load(),
		Expired:     c.tracker.expired.Load(),
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

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
)

// stats are the median and range of a set of values.
type stats struct{ median, min, max float64 }

func summarize(vs []float64) stats {
	if len(vs) == 0 {
		return stats{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{median: m, min: s[0], max: s[len(s)-1]}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

// group is the samples of one (workload, tool).
type group struct {
	workload loadgen.Workload
	tool     string
	samples  []sample
}

func (b *bench) groups() []group {
	var gs []group
	for _, s := range b.samples {
		i := slices.IndexFunc(gs, func(g group) bool { return g.workload == s.workload && g.tool == s.tool })
		if i < 0 {
			gs = append(gs, group{workload: s.workload, tool: s.tool})
			i = len(gs) - 1
		}
		gs[i].samples = append(gs[i].samples, s)
	}
	slices.SortStableFunc(gs, func(a, b group) int { return strings.Compare(string(a.workload), string(b.workload)) })
	return gs
}

func (b *bench) writeReport(took time.Duration) error {
	var w strings.Builder
	fmt.Fprintf(&w, "# Benchmarks\n\nWhat tcpclose-trace costs the host it watches. Reproduce with `sudo make bench` "+
		"(installs bpftrace and bpfcc-tools from Debian, builds, runs `tcpclose-bench`, rewrites this file).\n\n")
	fmt.Fprintf(&w, "- Machine: %d CPUs (%s), kernel %s, %s\n", runtime.NumCPU(), cpuModel(), kernelRelease(), runtime.Version())
	fmt.Fprintf(&w, "- Date: %s; the whole run took %s\n", time.Now().UTC().Format("2006-01-02"), took.Round(time.Second))
	fmt.Fprintf(&w, "- Load: the project's own generator (`internal/testsupport/loadgen`) on loopback in a private network namespace, "+
		"2 client workers (W5: 8); W1-W4 run %d connections or %s each, W5 %d connections or %s. "+
		"Every (workload, tool) pair ran %d times, interleaved (none, ours, peers, none, ..., the order rotating with each repetition), "+
		"in a namespace that keeps no TIME_WAIT sockets (so no run inherits the previous runs'); figures are medians with min-max.\n",
		b.conns, b.runFor, b.burst, 4*b.runFor, b.reps)
	fmt.Fprintf(&w, "- The tracers trace the whole host (no filter). tcpclose-trace's trace mode writes NDJSON to a pipe read by the benchmark "+
		"(which times each line against the event's own timestamp: the latency below); serve mode logs JSON to a pipe the same way.\n\n")

	gs := b.groups()
	b.writeTargets(&w, gs)

	fmt.Fprintf(&w, "## Throughput and tracer cost\n\n")
	b.writeThroughput(&w, gs)
	fmt.Fprintf(&w, "\nWorkloads: ")
	for i, wl := range loadgen.Workloads {
		if i > 0 {
			fmt.Fprintf(&w, "; ")
		}
		fmt.Fprintf(&w, "%s %s", wl, wl.Describe())
	}
	fmt.Fprintf(&w, ". *ring lost*: records the kernel counted but found no room for in the ring; "+
		"*dropped*: events read but dropped because the tracer's output fell behind; '-' where the tool has no such count.\n\n")

	b.writeAB(&w, gs)
	b.writeSustained(&w)
	b.writeTables(&w)

	fmt.Fprintf(&w, "## Event latency (close to the line on stdout, trace mode)\n\n"+
		"One line in %d is timed. W1 and W6 stream nothing of their own: their events, if any, are the rest of the host's "+
		"(this machine is shared), often in bursts.\n\n| workload | events timed | p50 | p99 | max |\n| --- | --- | --- | --- | --- |\n", latencyEvery)
	for _, g := range gs {
		if !strings.HasPrefix(g.tool, "tcpclose-trace (trace") {
			continue
		}
		all := latencies(g.samples)
		if len(all) == 0 {
			continue
		}
		fmt.Fprintf(&w, "| %s | %d | %s | %s | %s |\n", g.workload, len(all), percentile(all, 0.5).Round(time.Microsecond),
			percentile(all, 0.99).Round(time.Microsecond), percentile(all, 1).Round(time.Microsecond))
	}

	fmt.Fprintf(&w, "\n## BPF run time (kernel.bpf_stats_enabled, one run each)\n\n")
	b.writeBPF(&w)
	fmt.Fprintf(&w, "\n")
	b.writeCPUTime(&w, gs)

	b.writePeers(&w)
	out := w.String()
	if b.out == "-" {
		_, err := os.Stdout.WriteString(out)
		return err
	}
	// The soak's figures come from `make soak`, not from this run: kept.
	if old, err := os.ReadFile(b.out); err == nil {
		out += keptSection(string(old), soakHeading)
	}
	return os.WriteFile(b.out, []byte(out), 0o644)
}

// soakHeading starts BENCHMARKS.md's section that `make soak` records.
const soakHeading = "## Soak"

// keptSection returns the section of doc that starts with a line beginning
// with heading, up to the next "## " heading or the end, preceded by a
// blank line; "" if doc has none.
func keptSection(doc, heading string) string {
	i := strings.Index(doc, "\n"+heading)
	if i < 0 {
		return ""
	}
	sec := doc[i+1:]
	if j := strings.Index(sec[len(heading):], "\n## "); j >= 0 {
		sec = sec[:len(heading)+j+1]
	}
	return "\n" + strings.TrimRight(sec, "\n") + "\n"
}

// writePeers writes what happened to the peers that need more than tracepoints.
func (b *bench) writePeers(w io.Writer) {
	if len(b.peers) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Peers that need more than tracepoints\n\n| tool | result |\n| --- | --- |\n")
	for _, p := range b.peers {
		res := "ran: see its rows above (paired with its own no-tracer runs)"
		if !p.ran {
			res = "did not run here: " + p.problem
		}
		fmt.Fprintf(w, "| %s | %s |\n", p.name, res)
	}
}

// writeSustained writes the table of the sustained-rate runs.
func (b *bench) writeSustained(w io.Writer) {
	if len(b.steady) == 0 {
		return
	}
	fmt.Fprintf(w, "## Sustained rate\n\nW4 paced at %.0f events/s (%.0f connections/s, 4 workers) for %s, once per mode.\n\n",
		b.sustainedRate(), b.sustainedRate()/sustainedEventsPerConn, b.steadyFor())
	fmt.Fprintf(w, "| tool | events/s offered | events written | ring lost | dropped | tracer CPU per event | wakeups/s | peak RSS |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range b.steady {
		fmt.Fprintf(w, "| %s | %.0f | %d | %d | %d | %s | %.0f | %s |\n", s.tool, steadyRate(s), s.events, s.lost, s.dropped,
			cpuPerEvent(s.tool, []sample{s}), wakeups(s), rssColumn([]sample{s}))
	}
	fmt.Fprintf(w, "\n")
}

func (b *bench) steadyFor() time.Duration {
	if b.quick {
		return time.Second
	}
	return 10 * time.Second
}

// steadyRate is the event rate a sustained run offered.
func steadyRate(s sample) float64 {
	if s.result.Elapsed <= 0 {
		return 0
	}
	return float64(s.result.Conns*sustainedEventsPerConn) / s.result.Elapsed.Seconds()
}

func baseRates(gs []group) map[loadgen.Workload]float64 {
	base := map[loadgen.Workload]float64{}
	for _, g := range gs {
		if g.tool == "none" {
			base[g.workload] = summarize(rates(g.samples)).median
		}
	}
	return base
}

func latencies(ss []sample) []time.Duration {
	var all []time.Duration
	for _, s := range ss {
		all = append(all, s.latency...)
	}
	return all
}

// writeThroughput writes the throughput table of gs: rates, ratios to no
// tracer, and the tracer's costs.
func (b *bench) writeThroughput(w io.Writer, gs []group) {
	fmt.Fprintf(w, "| workload | tool | conn/s (median, min-max) | vs none | events | tracer CPU per event | wakeups/s | peak RSS | ring lost | dropped |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	base := baseRates(gs)
	for _, g := range gs {
		r := summarize(rates(g.samples))
		ratio := "-"
		if bv := base[g.workload]; bv > 0 && g.workload != loadgen.Idle {
			ratio = fmt.Sprintf("%.3f", r.median/bv)
		}
		rate := fmt.Sprintf("%.0f (%.0f-%.0f)", r.median, r.min, r.max)
		if g.workload == loadgen.Idle {
			rate = "-"
		}
		events := costColumn(g, func(s sample) float64 { return float64(s.events) }, "%.0f")
		if g.tool == hooksTool {
			events = "-"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", g.workload, g.tool, rate, ratio, events,
			cpuPerEvent(g.tool, g.samples), costColumn(g, wakeups, "%.0f"), rssColumn(g.samples),
			countColumn(g.samples, func(s sample) int64 { return s.lost }),
			countColumn(g.samples, func(s sample) int64 { return s.dropped }))
	}
}

// writeTargets compares the run with the targets, each with the
// measured figure and, where the run has them, the figures that explain it.
func (b *bench) writeTargets(w io.Writer, gs []group) {
	fmt.Fprintf(w, "## Targets\n\n| target | measured | met | context |\n| --- | --- | --- | --- |\n")
	unmet := map[string]bool{} // by reason paragraph: throughput, bpf, cpu
	row := func(target, measured string, met bool, context string) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", target, measured, map[bool]string{true: "yes", false: "**no**"}[met], context)
	}
	rowWhy := func(why, target, measured string, met bool, context string) {
		row(target, measured, met, context)
		if !met {
			unmet[why] = true
		}
	}
	base := baseRates(gs)
	find := func(wl loadgen.Workload, prefix string) (group, bool) {
		for _, g := range gs {
			if g.workload == wl && strings.HasPrefix(g.tool, prefix) {
				return g, true
			}
		}
		return group{}, false
	}
	for _, tc := range []struct {
		wl   loadgen.Workload
		want float64
	}{{loadgen.Graceful, 0.98}, {loadgen.Unread, 0.95}, {loadgen.PingPong, 0.99}, {loadgen.Bulk, 0.99}} {
		bv := base[tc.wl]
		peer, hooks := 0.0, 0.0
		if g, ok := find(tc.wl, "bpftrace (state"); ok && bv > 0 {
			peer = summarize(rates(g.samples)).median / bv
		}
		if g, ok := find(tc.wl, hooksTool); ok && bv > 0 {
			hooks = summarize(rates(g.samples)).median / bv
		}
		for _, mode := range []string{"tcpclose-trace (trace", "tcpclose-trace (serve"} {
			g, ok := find(tc.wl, mode)
			if !ok || bv == 0 {
				continue
			}
			ratio := summarize(rates(g.samples)).median / bv
			ctx := b.costContext(tc.wl, g, bv)
			if hooks > 0 {
				ctx += fmt.Sprintf("; empty programs on the same tracepoints: %.3f", hooks)
			}
			if peer > 0 {
				ctx += fmt.Sprintf("; bpftrace script: %.3f", peer)
			}
			rowWhy("throughput", fmt.Sprintf("%s throughput with %s mode >= %.2f of none, and above every peer", tc.wl, strings.TrimPrefix(mode, "tcpclose-trace ("), tc.want),
				fmt.Sprintf("%.3f", ratio), ratio >= tc.want && ratio > peer, ctx)
		}
	}
	for _, wl := range []loadgen.Workload{loadgen.Graceful, loadgen.Unread} {
		var rt, runs float64
		for _, s := range b.bpf {
			if s.workload == wl && s.tool == traceTool {
				rt += float64(s.runtime.Nanoseconds())
				runs += float64(s.runs)
			}
		}
		if runs == 0 {
			continue
		}
		ns := rt / runs
		ctx := ""
		if b.floor > 0 {
			ctx = fmt.Sprintf("bpf_stats itself: an empty program measures %d ns per run here; %.0f ns above that", b.floor.Nanoseconds(), ns-float64(b.floor.Nanoseconds()))
		}
		rowWhy("bpf", fmt.Sprintf("%s BPF time <= 100 ns per run", wl), fmt.Sprintf("%.0f ns", ns), ns <= 100, ctx)
	}
	var worst time.Duration
	worstWhere := ""
	for _, g := range gs {
		// W1 and W6 stream nothing of their own: their events come from the
		// rest of the host, and would only divide fixed costs.
		// W8 and W9 stream nothing either; runs under a budget stream a
		// few events of many, and would divide the reading of the rest
		// by those few.
		if !strings.HasPrefix(g.tool, "tcpclose-trace") || g.workload == loadgen.Graceful || g.workload == loadgen.Idle ||
			g.workload == loadgen.PingPong || g.workload == loadgen.Bulk || budgeted(g) || g.tool == ringlibTool {
			continue
		}
		if c := perEvent(g.samples); c > worst {
			worst, worstWhere = c, fmt.Sprintf("%s, %s", g.workload, g.tool)
		}
	}
	for _, s := range b.steady {
		if budgeted(group{samples: []sample{s}}) || s.tool == ringlibTool {
			continue
		}
		if c := perEvent([]sample{s}); c > worst {
			worst, worstWhere = c, "sustained, "+s.tool
		}
	}
	if worstWhere != "" {
		ctx := worstWhere + "; the tracer process's whole CPU time (reading, decoding, formatting, writing, Go runtime, and its idle cost) over the events it wrote"
		if idle := b.idleCPU(gs); idle > 0 {
			ctx += fmt.Sprintf("; idle (W6) it uses %s of CPU per second", idle.Round(100*time.Microsecond))
		}
		rowWhy("cpu", "collector CPU <= 1 us per event (worst streaming run)", worst.Round(10*time.Nanosecond).String(), worst <= time.Microsecond, ctx)
	}
	var rss, stacksRSS int64
	for _, g := range gs {
		if strings.HasPrefix(g.tool, "tcpclose-trace") {
			for _, s := range g.samples {
				if g.tool == stacksTool {
					stacksRSS = max(stacksRSS, s.rss)
				} else {
					rss = max(rss, s.rss)
				}
			}
		}
	}
	if rss > 0 {
		row("peak RSS <= 40 MB", fmt.Sprintf("%.1f MB", float64(rss)/1e6), rss <= 40e6, "highest peak (VmHWM) of all our runs but --stacks, bursts included")
	}
	if stacksRSS > 0 {
		row("peak RSS with --stacks (record)", fmt.Sprintf("%.1f MB", float64(stacksRSS)/1e6), true, "W1 and W2: the symbolizer's caches (per build-id and per process)")
	}
	if rss, full := b.tablesTarget(); rss > 0 {
		ctx := "W7, both modes: the correlation table full, evicting"
		if !full {
			ctx = "W7, both modes; **the table did not fill** (fewer undrained closes than its capacity, or none evicted)"
		}
		row("peak RSS with full tables <= 40 MB", fmt.Sprintf("%.1f MB", float64(rss)/1e6), rss <= 40e6 && full, ctx)
	}
	for _, s := range b.steady {
		row(fmt.Sprintf("0 ring records lost at %.0fk events/s (%s)", b.sustainedRate()/1000, s.tool),
			fmt.Sprintf("%d lost, %d dropped", s.lost, s.dropped), s.lost == 0 && s.dropped == 0,
			fmt.Sprintf("%.0f events/s offered", steadyRate(s)))
	}
	var p99 time.Duration
	p99Where := ""
	for _, g := range gs {
		if strings.HasPrefix(g.tool, "tcpclose-trace (trace") && g.workload != loadgen.Graceful && g.workload != loadgen.Idle {
			if all := latencies(g.samples); len(all) > 0 {
				if p := percentile(all, 0.99); p > p99 {
					p99, p99Where = p, string(g.workload)
				}
			}
		}
	}
	if p99Where != "" {
		row("event latency p99 <= 200 ms", p99.Round(time.Millisecond).String(), p99 <= 200*time.Millisecond, "worst of W2-W5: "+p99Where)
	}
	b.cpuTargets(func(why, target, measured string, met bool, context string) {
		if why == "" {
			row(target, measured, met, context)
			return
		}
		rowWhy(why, target, measured, met, context)
	}, gs)
	fmt.Fprintf(w, "\n")
	b.writeWhy(w, gs, unmet)
}

// writeWhy says, for each kind of unmet target, why, with this run's figures.
func (b *bench) writeWhy(w io.Writer, gs []group, unmet map[string]bool) {
	if len(unmet) == 0 {
		return
	}
	fmt.Fprintf(w, "Why the targets marked **no** are not met:\n\n")
	if unmet["throughput"] {
		lo, hi := 0.0, 0.0
		for _, g := range gs {
			if g.tool == "none" && g.workload != loadgen.Idle {
				r := summarize(rates(g.samples))
				if r.median > 0 {
					lo, hi = min(lo, r.min/r.median-1), max(hi, r.max/r.median-1)
				}
			}
		}
		hooks := ""
		var hl, hh float64
		base := baseRates(gs)
		for _, g := range gs {
			if g.tool == hooksTool && base[g.workload] > 0 {
				r := summarize(rates(g.samples)).median / base[g.workload]
				if hooks == "" {
					hl, hh = r, r
				}
				hl, hh, hooks = min(hl, r), max(hh, r), "set"
			}
		}
		fmt.Fprintf(w, "- **Throughput.** What the tracer itself spends per connection (BPF run time plus its process's CPU, in the context column) "+
			"is a few percent of the CPU time a connection takes, yet the measured loss is larger. The rest is kernel work that neither figure "+
			"sees (the tracepoint dispatch, with retpolines on this CPU; the allocation at connect, the copy at accept and the RCU-deferred free "+
			"of the socket-local storage that attributes softirq events) and the noise of this shared 2-vCPU VM: the no-tracer runs alone spread "+
			"from %+.0f%% to %+.0f%% around their median", lo*100, hi*100)
		if hooks != "" {
			fmt.Fprintf(w, ", and programs that do nothing, on the same tracepoints, measure %.2f to %.2f of none", hl, hh)
		}
		fmt.Fprintf(w, ". Differences of a few percent are below what this machine resolves.\n")
	}
	if unmet["bpf"] {
		fmt.Fprintf(w, "- **BPF time.** bpf_stats adds its own cost to every run: an empty program measures %d ns here, so 100 ns leaves "+
			"about %d ns of work. W1 runs about 18 programs per connection: one creates the socket's storage at connect (an allocation, "+
			"about half a microsecond), two generate cookies, one classifies the close; the others return after a few loads or a per-CPU "+
			"cache hit. W2 streams two records per connection, each a boot-clock read (slow in this VM) and a ring reservation.\n",
			b.floor.Nanoseconds(), max(0, 100-b.floor.Nanoseconds()))
	}
	b.writeWhyCPUTime(w, gs, unmet)
	if unmet["cpu"] {
		var steady string
		for _, s := range b.steady {
			steady += fmt.Sprintf("%s %s; ", s.tool, cpuPerEvent(s.tool, []sample{s}))
		}
		fmt.Fprintf(w, "- **Collector CPU.** The figure is the tracer process's whole CPU time over the events it wrote, so it includes "+
			"its fixed cost (a drain every 50 ms, the Go runtime) and the kernel's side of its reads and writes; it falls as the rate "+
			"rises (at the paced %.0fk events/s: %s). Encoding alone is a fraction of it (`go test -bench . ./output/`).\n",
			b.sustainedRate()/1000, strings.TrimSuffix(steady, "; "))
	}
	fmt.Fprintf(w, "\n")
}

// idleCPU is the trace mode's CPU time per second of W6 (no connections).
func (b *bench) idleCPU(gs []group) time.Duration {
	for _, g := range gs {
		if g.workload != loadgen.Idle || !strings.HasPrefix(g.tool, "tcpclose-trace (trace") {
			continue
		}
		var cpu, elapsed time.Duration
		for _, s := range g.samples {
			cpu += s.cpu
			elapsed += s.elapsed
		}
		if elapsed > 0 {
			return time.Duration(float64(cpu) / elapsed.Seconds())
		}
	}
	return 0
}

// costContext explains a throughput ratio: what the tracer costs per
// connection against the CPU time one connection has without it.
func (b *bench) costContext(wl loadgen.Workload, g group, baseRate float64) string {
	bpfPerConn := 0.0
	if r, ok := b.bpfRun(wl, traceTool); ok {
		bpfPerConn = r.perConn(r.runtime) / 1000
	}
	process, ok := processPerConn(g)
	if !ok {
		return ""
	}
	budget := float64(runtime.NumCPU()) / baseRate * 1e6
	return fmt.Sprintf("per connection: BPF %.1f us + tracer process %.1f us, of %.0f us CPU per connection without a tracer (%d CPUs / rate)",
		bpfPerConn, process, budget, runtime.NumCPU())
}

// budgeted says whether the runs streamed fewer events than connections:
// the budget suppressed the rest.
func budgeted(g group) bool {
	var conns int64
	for _, s := range g.samples {
		conns += s.result.Conns
	}
	return totalEvents(g.samples) < conns
}

func totalEvents(ss []sample) int64 {
	var n int64
	for _, s := range ss {
		n += s.events
	}
	return n
}

// perEvent is the tracer's CPU time per event written.
func perEvent(ss []sample) time.Duration {
	var cpu time.Duration
	for _, s := range ss {
		cpu += s.cpu
	}
	n := totalEvents(ss)
	if n == 0 {
		return 0
	}
	return cpu / time.Duration(n)
}

// writeBPF writes the table of BPF run time per program and workload.
func (b *bench) writeBPF(w io.Writer) {
	fmt.Fprintf(w, "| workload | program | runs | ns per run | recursion misses |\n| --- | --- | --- | --- | --- |\n")
	type total struct {
		ns, runs float64
		misses   uint64
	}
	totals := map[loadgen.Workload]total{}
	for _, s := range b.bpf {
		if s.runs == 0 || s.tool != traceTool {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %d | %.0f | %d |\n", s.workload, s.program, s.runs, float64(s.runtime.Nanoseconds())/float64(s.runs), s.misses)
		t := totals[s.workload]
		totals[s.workload] = total{t.ns + float64(s.runtime.Nanoseconds()), t.runs + float64(s.runs), t.misses + s.misses}
	}
	for _, wl := range bpfWorkloads {
		if t := totals[wl]; t.runs > 0 {
			fmt.Fprintf(w, "| %s | **all** | %.0f | **%.0f** | %d |\n", wl, t.runs, t.ns/t.runs, t.misses)
		}
	}
	if b.floor > 0 {
		fmt.Fprintf(w, "| all | (an empty program, for scale) | | %d | |\n", b.floor.Nanoseconds())
	}
	fmt.Fprintf(w, "\nThe trace mode's programs. W8 and W9 run only the send and receive programs (one each per send and per receive on a persistent "+
		"connection): their ns per run minus the empty program's is the tracer's cost per call there.\n")
	fmt.Fprintf(w, "\nbpf_stats times each run with the scheduler clock, which itself costs: the empty program's figure "+
		"is that floor on this machine. *recursion misses*: runs the kernel skipped because a BPF program was already running on that CPU "+
		"(the event is then neither counted nor streamed).\n")
}

func rates(ss []sample) []float64 {
	var vs []float64
	for _, s := range ss {
		vs = append(vs, s.result.PerSecond())
	}
	return vs
}

func wakeups(s sample) float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ctxSw) / s.elapsed.Seconds()
}

// costColumn formats the median of f over the samples of a traced group.
func costColumn(g group, f func(sample) float64, format string) string {
	if g.tool == "none" || strings.HasPrefix(g.tool, "none ") {
		return "-"
	}
	var vs []float64
	for _, s := range g.samples {
		vs = append(vs, f(s))
	}
	return fmt.Sprintf(format, summarize(vs).median)
}

func cpuPerEvent(tool string, ss []sample) string {
	if tool == "none" || strings.HasPrefix(tool, "none ") {
		return "-"
	}
	if totalEvents(ss) < 100*int64(len(ss)) {
		var cpu time.Duration
		for _, s := range ss {
			cpu += s.cpu
		}
		return fmt.Sprintf("%s total", (cpu / time.Duration(len(ss))).Round(time.Millisecond))
	}
	return perEvent(ss).Round(10 * time.Nanosecond).String()
}

func rssColumn(ss []sample) string {
	var peak int64
	for _, s := range ss {
		peak = max(peak, s.rss)
	}
	if peak == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MB", float64(peak)/1e6)
}

// countColumn sums a count over the samples, '-' if any lacks it.
func countColumn(ss []sample, f func(sample) int64) string {
	var n int64
	for _, s := range ss {
		if f(s) < 0 {
			return "-"
		}
		n += f(s)
	}
	return fmt.Sprint(n)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

func kernelRelease() string {
	out, err := exec.Command("uname", "-r").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

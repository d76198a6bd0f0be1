package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
)

// traceTool names the trace mode with its default flags.
const traceTool = "tcpclose-trace (trace, NDJSON)"

// bpfRun finds the run-time measurement of a tool under a workload.
func (b *bench) bpfRun(wl loadgen.Workload, tool string) (bpfRun, bool) {
	for _, r := range b.bpfRuns {
		if r.workload == wl && r.tool == tool {
			return r, r.conns > 0
		}
	}
	return bpfRun{}, false
}

// perConn is v (ns or runs) per connection (W8, W9: per exchange).
func (r bpfRun) perConn(v any) float64 {
	if r.conns == 0 {
		return 0
	}
	switch v := v.(type) {
	case time.Duration:
		return float64(v.Nanoseconds()) / float64(r.conns)
	case uint64:
		return float64(v) / float64(r.conns)
	}
	return 0
}

// aboveFloor is the run time per connection above what bpf_stats itself
// costs each run (the empty program's run time, times the runs).
func (b *bench) aboveFloor(r bpfRun) float64 {
	return r.perConn(r.runtime) - r.perConn(r.runs)*b.floorFor(r.workload)
}

// perCall is the per-call programs' run time per run above the floor; ok
// is false where they did not run.
func (b *bench) perCall(r bpfRun) (float64, bool) {
	if r.calls == 0 {
		return 0, false
	}
	return float64(r.callTime.Nanoseconds())/float64(r.calls) - b.floorFor(r.workload), true
}

// findGroup is the throughput group of a tool (by name prefix) under a workload.
func findGroup(gs []group, wl loadgen.Workload, prefix string) (group, bool) {
	for _, g := range gs {
		if g.workload == wl && strings.HasPrefix(g.tool, prefix) {
			return g, true
		}
	}
	return group{}, false
}

// processPerConn is the tracer process's CPU time per connection (W8, W9:
// exchange) over g's runs, in microseconds; false when they made none.
func processPerConn(g group) (float64, bool) {
	var cpu time.Duration
	var conns int64
	for _, s := range g.samples {
		cpu += s.cpu
		conns += s.result.Conns
	}
	if conns == 0 {
		return 0, false
	}
	return float64(cpu.Nanoseconds()) / float64(conns) / 1000, true
}

// processPerConnOf is processPerConn of a tool's runs under wl, "-" where
// there are none.
func processPerConnOf(gs []group, wl loadgen.Workload, prefix string) string {
	if g, ok := findGroup(gs, wl, prefix); ok {
		if us, ok := processPerConn(g); ok {
			return fmt.Sprintf("%.2f us", us)
		}
	}
	return "-"
}

// writeCPUTime writes the CPU time per connection and per call of each tool
// under each workload: the figures that the machine's neighbours do not
// move, where the throughput ratios move by several points.
func (b *bench) writeCPUTime(w io.Writer, gs []group) {
	if len(b.bpfRuns) == 0 {
		return
	}
	fmt.Fprintf(w, "## CPU time per connection and per call (kernel.bpf_stats_enabled, one run each)\n\n")
	fmt.Fprintf(w, "Each workload once with each tool, %d connections (W8, W9: exchanges) or %s. *runs*: BPF program runs "+
		"per connection; *BPF ns*: their run time per connection as bpf_stats counts it; *above the floor*: that less what bpf_stats "+
		"itself adds to each run (the empty programs' run time per run under the same workload, times the runs; %d ns on average here): the programs' own work. "+
		"*per send/recv*: our per-call programs (sock_send_length/sock_recv_length), runs per exchange and ns per run above the floor. "+
		"*tracer CPU per event*: the tracer process's CPU over the events it wrote, from the throughput runs above "+
		"(the trace mode streams at most its budget per kind and second: W2-W5 with the default budget divide by fewer events).\n\n",
		b.conns, b.runFor, int64(b.floorNs()))
	fmt.Fprintf(w, "| workload | tool | runs | BPF ns | above the floor | send/recv runs | ns per send/recv above the floor | tracer CPU per event |\n")
	fmt.Fprintf(w, "| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range b.bpfRuns {
		calls, callNs := "-", "-"
		if ns, ok := b.perCall(r); ok && r.tool != hooksTool && !strings.HasPrefix(r.tool, "bpftrace") {
			calls, callNs = fmt.Sprintf("%.1f", r.perConn(r.calls)), fmt.Sprintf("%.0f", ns)
		}
		cpu := "-"
		if g, ok := findGroup(gs, r.workload, r.tool); ok {
			cpu = cpuPerEvent(g.tool, g.samples)
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %.0f | %.0f | %s | %s | %s |\n", r.workload, r.tool, r.perConn(r.runs),
			r.perConn(r.runtime), b.aboveFloor(r), calls, callNs, cpu)
	}
	fmt.Fprintf(w, "\n")
}

// targetRow records one target: why names the paragraph that explains it if unmet.
type targetRow func(why, target, measured string, met bool, context string)

// ratio is the median rate of a tool under a workload over none's; 0 if either is missing.
func ratio(gs []group, wl loadgen.Workload, prefix string) float64 {
	base := baseRates(gs)[wl]
	g, ok := findGroup(gs, wl, prefix)
	if !ok || base == 0 {
		return 0
	}
	return summarize(rates(g.samples)).median / base
}

// ratioRange is the min-max of a tool's rates over none's median.
func ratioRange(gs []group, wl loadgen.Workload, prefix string) string {
	base := baseRates(gs)[wl]
	g, ok := findGroup(gs, wl, prefix)
	if !ok || base == 0 {
		return ""
	}
	r := summarize(rates(g.samples))
	return fmt.Sprintf("%.2f-%.2f", r.min/base, r.max/base)
}

// cpuTargets adds the targets of issues 17 (CPU time, serve mode), 18
// (--stacks) and 19 (event storms).
func (b *bench) cpuTargets(row targetRow, gs []group) {
	for _, wl := range []loadgen.Workload{loadgen.PingPong, loadgen.Bulk} {
		if r, ok := b.bpfRun(wl, traceTool); ok {
			if ns, ok := b.perCall(r); ok {
				row("percall", fmt.Sprintf("%s BPF per send/recv <= 15 ns above the floor", wl), fmt.Sprintf("%.0f ns", ns), ns <= 15,
					fmt.Sprintf("%.1f send/recv runs per exchange, %.0f ns per run; the empty programs %.0f ns per run under %s", r.perConn(r.calls),
						float64(r.callTime.Nanoseconds())/float64(r.calls), b.floorFor(wl), wl))
			}
		}
	}
	for _, tc := range []struct {
		wl   loadgen.Workload
		want float64
	}{{loadgen.Graceful, 1000}, {loadgen.Unread, 1500}} {
		r, ok := b.bpfRun(tc.wl, traceTool)
		if !ok {
			continue
		}
		total, above := r.perConn(r.runtime), b.aboveFloor(r)
		ctx := fmt.Sprintf("%.1f runs per connection; above the floor: %.0f ns", r.perConn(r.runs), above)
		if h, ok := b.bpfRun(tc.wl, hooksTool); ok {
			ctx += fmt.Sprintf("; empty programs on the same tracepoints: %.1f runs, %.0f ns", h.perConn(h.runs), h.perConn(h.runtime))
		}
		if p, ok := b.bpfRun(tc.wl, "bpftrace (state changes + resets)"); ok {
			ctx += fmt.Sprintf("; bpftrace script: %.1f runs, %.0f ns", p.perConn(p.runs), p.perConn(p.runtime))
		}
		row("perconn", fmt.Sprintf("%s BPF per connection <= %.1f us", tc.wl, tc.want/1000), fmt.Sprintf("%.2f us", total/1000),
			total <= tc.want, ctx)
	}
	for _, wl := range []loadgen.Workload{loadgen.Graceful, loadgen.Unread, loadgen.LingerZero, loadgen.ClosedPort, loadgen.Burst,
		loadgen.PingPong, loadgen.Bulk} {
		tr, sv := ratio(gs, wl, "tcpclose-trace (trace"), ratio(gs, wl, "tcpclose-trace (serve")
		if tr == 0 || sv == 0 {
			continue
		}
		row("serve", fmt.Sprintf("%s serve mode within 2 points of trace mode", wl), fmt.Sprintf("%+.1f points", (sv-tr)*100),
			sv >= tr-0.02, fmt.Sprintf("trace %.3f (%s), serve %.3f (%s); tracer process per connection: trace %s, serve %s",
				tr, ratioRange(gs, wl, "tcpclose-trace (trace"), sv, ratioRange(gs, wl, "tcpclose-trace (serve"),
				processPerConnOf(gs, wl, "tcpclose-trace (trace"), processPerConnOf(gs, wl, "tcpclose-trace (serve")))
	}
	// Issue 19: event storms.
	for _, wl := range []loadgen.Workload{loadgen.LingerZero, loadgen.ClosedPort} {
		hooks := ratio(gs, wl, hooksTool)
		nob := ratio(gs, wl, noBudgetTool)
		for _, mode := range []string{"tcpclose-trace (trace", "tcpclose-trace (serve"} {
			r := ratio(gs, wl, mode)
			if r == 0 {
				continue
			}
			ctx := fmt.Sprintf("range %s; empty programs %.3f (%s); no budget %.3f (%s)", ratioRange(gs, wl, mode), hooks,
				ratioRange(gs, wl, hooksTool), nob, ratioRange(gs, wl, noBudgetTool))
			name := strings.TrimPrefix(mode, "tcpclose-trace (")
			row("storm", fmt.Sprintf("%s %s mode >= 0.90 of none (default budget)", wl, name), fmt.Sprintf("%.3f", r), r >= 0.90, ctx)
			if hooks > 0 {
				row("storm", fmt.Sprintf("%s %s mode within 5 points of the empty programs", wl, name),
					fmt.Sprintf("%+.1f points", (r-hooks)*100), r >= hooks-0.05, ctx)
			}
		}
		if r, ok := b.bpfRun(wl, traceTool); ok {
			ctx := fmt.Sprintf("%.1f runs per connection", r.perConn(r.runs))
			if n, ok := b.bpfRun(wl, noBudgetTool); ok {
				ctx += fmt.Sprintf("; no budget: %.2f us (%.0f ns above the floor)", n.perConn(n.runtime)/1000, b.aboveFloor(n))
			}
			if h, ok := b.bpfRun(wl, hooksTool); ok {
				ctx += fmt.Sprintf("; empty programs %.0f ns per connection", h.perConn(h.runtime))
			}
			for _, t := range []string{traceTool, noBudgetTool} {
				if g, ok := findGroup(gs, wl, t); ok {
					if us, ok := processPerConn(g); ok {
						ctx += fmt.Sprintf("; tracer process %.2f us per connection (%s)", us,
							map[bool]string{true: "default budget", false: "no budget"}[t == traceTool])
					}
				}
			}
			row("", fmt.Sprintf("%s BPF per connection (record)", wl), fmt.Sprintf("%.2f us (%.0f ns above the floor)",
				r.perConn(r.runtime)/1000, b.aboveFloor(r)), true, ctx)
		}
	}
	for _, s := range b.low {
		p99 := percentile(s.latency, 0.99)
		row("storm", fmt.Sprintf("at a low rate nothing is suppressed and event latency p99 <= 200 ms (%s)", s.tool),
			fmt.Sprintf("%d suppressed, p99 %s", s.suppressed, p99.Round(time.Millisecond)), s.suppressed == 0 && p99 <= 200*time.Millisecond && len(s.latency) > 0,
			fmt.Sprintf("W2 paced at %d connections/s, %d connections, %d events written, %d timed; the trace mode with its default budget, "+
				"--netns the benchmark's namespace (the host's other traffic would spend the budget)", lowRateConns, s.result.Conns, s.events, len(s.latency)))
	}
	// Issue 18: --stacks.
	if s, ok := b.bpfRun(loadgen.Graceful, stacksTool); ok {
		if t, ok := b.bpfRun(loadgen.Graceful, traceTool); ok {
			d := s.perConn(s.runtime) - t.perConn(t.runtime)
			row("stacks", "W1 (no anomaly) --stacks costs nothing more", fmt.Sprintf("%+.0f ns BPF per connection", d),
				s.perConn(s.runs) == t.perConn(t.runs) || d <= 0.05*t.perConn(t.runtime),
				fmt.Sprintf("runs per connection %.2f with, %.2f without; BPF %.0f ns with, %.0f ns without (one run each: differences within 5%% are noise); throughput %.3f with, %.3f without",
					s.perConn(s.runs), t.perConn(t.runs), s.perConn(s.runtime), t.perConn(t.runtime),
					ratio(gs, loadgen.Graceful, stacksTool), ratio(gs, loadgen.Graceful, "tcpclose-trace (trace")))
		}
	}
	if s, ok := b.bpfRun(loadgen.Unread, stacksTool); ok {
		if t, ok := b.bpfRun(loadgen.Unread, traceTool); ok {
			d := s.perConn(s.runtime) - t.perConn(t.runtime)
			cpu := ""
			if gs2, ok := findGroup(gs, loadgen.Unread, stacksTool); ok {
				if gt, ok := findGroup(gs, loadgen.Unread, "tcpclose-trace (trace"); ok {
					cpu = fmt.Sprintf("; tracer CPU per streamed event %s with, %s without", cpuPerEvent(gs2.tool, gs2.samples), cpuPerEvent(gt.tool, gt.samples))
				}
			}
			row("", "W2 (one unread_close per connection) --stacks cost per anomaly (record)", fmt.Sprintf("%+.0f ns BPF", d), true,
				fmt.Sprintf("BPF per connection %.0f ns with, %.0f ns without%s; throughput %.3f with, %.3f without", s.perConn(s.runtime),
					t.perConn(t.runtime), cpu, ratio(gs, loadgen.Unread, stacksTool), ratio(gs, loadgen.Unread, "tcpclose-trace (trace")))
		}
	}
}

// writeWhyCPUTime explains the unmet targets of cpuTargets with this run's figures.
func (b *bench) writeWhyCPUTime(w io.Writer, gs []group, unmet map[string]bool) {
	if unmet["percall"] {
		fmt.Fprintf(w, "- **BPF per send/recv.** Each send and receive runs one program (sock_send_length or sock_recv_length) "+
			"that looks the socket up in a direct-mapped array of sockets whose owner is settled (an inlined array lookup and "+
			"one compare, no helper call) and reads the socket's storage only on a miss; the figure is its run time less the "+
			"empty program's, both from bpf_stats in this run. Taken apart on W8 and W9 (2026-12-04, one tracer per build, "+
			"alternated): with the earlier per-CPU cache of cookies (a helper call for the cookie, one for the per-CPU slot) "+
			"72-74 ns above the floor on W8 and 58-64 on W9; with the array 47-68 and 35-56; a build that only checks the "+
			"protocol runs at the floor, and one whose miss path only fills the slot 26-29 and 38. Misses are not the rest: "+
			"a counting build saw 2 misses in 33,822 lookups on W8 and 2 in 284,261 on W9. Why the same hit path costs more in "+
			"the whole program than in the small one is not found here (no perf on this machine). The way around the "+
			"per-call programs, learning the owner at accept (fexit on inet_csk_accept), would lose the owner of sockets "+
			"handed to another process after accept (fork-per-connection servers such as PostgreSQL's backends, systemd's "+
			"Accept=yes) for what happens to them before their close; it is not built.\n")
	}
	if unmet["perconn"] {
		fmt.Fprintf(w, "- **BPF per connection.** See the CPU-time table: the runs per connection times what bpf_stats adds to each "+
			"(%d ns) is most of the gap; the rest is the programs' own work (the socket storage created at connect, cookies, the close's "+
			"classification, and on W2 the two records' reservations).\n", int64(b.floorNs()))
	}
	if unmet["serve"] {
		fmt.Fprintf(w, "- **Serve vs trace mode.** Both modes load the same programs with the same budget (the CPU-time table is one "+
			"program set); the difference is in user space (serve mode logs JSON lines through slog's writer and keeps metrics). "+
			"The context column gives each mode's tracer-process CPU per connection, a figure the neighbours do not move: where serve's "+
			"is not above trace's, its own work cannot explain a lower ratio, and the ratios' own ranges (also there) are wider "+
			"than 2 points on this shared machine.\n")
	}
	if unmet["storm"] {
		fmt.Fprintf(w, "- **Event storms.** With the default budget the tracer streams a few thousand events per second and counts the "+
			"rest; what remains is the programs' cost per connection (the record rows of W3 and W4, above the empty programs' own) and "+
			"the tracepoints' dispatch, which the empty programs pay too: compare the no-budget and empty-program ratios in the context column, "+
			"and the ranges, which on this shared machine overlap.\n")
	}
	if unmet["stacks"] {
		fmt.Fprintf(w, "- **--stacks without anomalies.** The stack is captured only on a close that loses data; the W1 rows "+
			"compare run counts and run time per connection with and without it.\n")
	}
}

// floorFor is what bpf_stats adds to each run under a workload: the empty
// programs' run time per run under that workload (the same tracepoints, the
// same load), else floorNs.
func (b *bench) floorFor(wl loadgen.Workload) float64 {
	if h, ok := b.bpfRun(wl, hooksTool); ok && h.runs > 0 {
		return float64(h.runtime.Nanoseconds()) / float64(h.runs)
	}
	return b.floorNs()
}

// floorNs is what bpf_stats adds to each run: the run time per run of the
// empty programs on our tracepoints, over all workloads (else the single
// empty program's).
func (b *bench) floorNs() float64 {
	var runs uint64
	var rt time.Duration
	for _, r := range b.bpfRuns {
		if r.tool == hooksTool {
			runs += r.runs
			rt += r.runtime
		}
	}
	if runs > 0 {
		return float64(rt.Nanoseconds()) / float64(runs)
	}
	return float64(b.floor.Nanoseconds())
}

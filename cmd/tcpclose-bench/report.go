package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/loadgen"
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
	fmt.Fprintf(&w, "- Load: the project's own generator (`internal/loadgen`) on loopback in a private network namespace, "+
		"2 client workers (W5: 8); W1-W4 run %d connections or %s each, W5 %d connections or %s. "+
		"Every (workload, tool) pair ran %d times, interleaved (none, ours, peers, none, ...); figures are medians with min-max.\n",
		b.conns, b.runFor, b.burst, 4*b.runFor, b.reps)
	fmt.Fprintf(&w, "- The tracers trace the whole host (no filter). tcpclose-trace's trace mode writes NDJSON to a pipe read by the benchmark "+
		"(which times each line against the event's own timestamp: the latency below); serve mode logs JSON to a pipe the same way.\n\n")

	fmt.Fprintf(&w, "## Throughput and tracer cost\n\n")
	fmt.Fprintf(&w, "| workload | tool | conn/s (median, min-max) | vs none | events | tracer CPU per 1k events | wakeups/s | peak RSS | ring lost |\n")
	fmt.Fprintf(&w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	gs := b.groups()
	base := map[loadgen.Workload]float64{}
	for _, g := range gs {
		if g.tool == "none" {
			base[g.workload] = summarize(rates(g.samples)).median
		}
	}
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
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", g.workload, g.tool, rate, ratio,
			costColumn(g, func(s sample) float64 { return float64(s.events) }, "%.0f"),
			cpuPerK(g), costColumn(g, wakeups, "%.0f"), rssColumn(g), lostColumn(g))
	}
	fmt.Fprintf(&w, "\nWorkloads: ")
	for i, wl := range loadgen.Workloads {
		if i > 0 {
			fmt.Fprintf(&w, "; ")
		}
		fmt.Fprintf(&w, "%s %s", wl, wl.Describe())
	}
	fmt.Fprintf(&w, ".\n\n")

	fmt.Fprintf(&w, "## Event latency (close to the line on stdout, trace mode)\n\n| workload | events timed | p50 | p99 | max |\n| --- | --- | --- | --- | --- |\n")
	for _, g := range gs {
		if !strings.HasPrefix(g.tool, "tcpclose-trace (trace") {
			continue
		}
		var all []time.Duration
		for _, s := range g.samples {
			all = append(all, s.latency...)
		}
		if len(all) == 0 {
			continue
		}
		fmt.Fprintf(&w, "| %s | %d | %s | %s | %s |\n", g.workload, len(all), percentile(all, 0.5).Round(time.Microsecond),
			percentile(all, 0.99).Round(time.Microsecond), percentile(all, 1).Round(time.Microsecond))
	}

	fmt.Fprintf(&w, "\n## BPF run time (kernel.bpf_stats_enabled, one run each)\n\n| workload | program | runs | ns per run |\n| --- | --- | --- | --- |\n")
	totals := map[loadgen.Workload][2]float64{}
	for _, s := range b.bpf {
		if s.runs == 0 {
			continue
		}
		fmt.Fprintf(&w, "| %s | %s | %d | %.0f |\n", s.workload, s.program, s.runs, float64(s.runtime.Nanoseconds())/float64(s.runs))
		t := totals[s.workload]
		totals[s.workload] = [2]float64{t[0] + float64(s.runtime.Nanoseconds()), t[1] + float64(s.runs)}
	}
	for _, wl := range []loadgen.Workload{loadgen.Graceful, loadgen.Unread} {
		if t := totals[wl]; t[1] > 0 {
			fmt.Fprintf(&w, "| %s | **all** | %.0f | **%.0f** |\n", wl, t[1], t[0]/t[1])
		}
	}

	if len(b.peers) > 0 {
		fmt.Fprintf(&w, "\n## Peers that need more than tracepoints\n\n| tool | result |\n| --- | --- |\n")
		for _, p := range b.peers {
			res := "ran: see its rows above (paired with its own no-tracer runs)"
			if !p.ran {
				res = "did not run here: " + p.problem
			}
			fmt.Fprintf(&w, "| %s | %s |\n", p.name, res)
		}
	}
	out := w.String()
	if b.out == "-" {
		_, err := os.Stdout.WriteString(out)
		return err
	}
	return os.WriteFile(b.out, []byte(out), 0o644)
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

func cpuPerK(g group) string {
	var cpu time.Duration
	var events int64
	for _, s := range g.samples {
		cpu += s.cpu
		events += s.events
	}
	if g.tool == "none" || strings.HasPrefix(g.tool, "none ") {
		return "-"
	}
	if events < 100 {
		return fmt.Sprintf("%s total", cpu/time.Duration(len(g.samples)))
	}
	return (cpu * 1000 / time.Duration(events)).Round(time.Microsecond).String()
}

func rssColumn(g group) string {
	var peak int64
	for _, s := range g.samples {
		peak = max(peak, s.rss)
	}
	if peak == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MB", float64(peak)/1e6)
}

func lostColumn(g group) string {
	var lost int64
	for _, s := range g.samples {
		if s.lost < 0 {
			return "-"
		}
		lost += s.lost
	}
	return fmt.Sprint(lost)
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

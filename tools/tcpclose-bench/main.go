// Command tcpclose-bench measures what tcpclose-trace costs the host it
// watches: loopback connection throughput in a private network namespace
// with no tracer, with tcpclose-trace (trace and serve modes) and with peer
// tools, interleaved and repeated, plus BPF run time per event, collector
// CPU, memory, wakeups, ring loss and event latency. It writes BENCHMARKS.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "load" {
		err = runLoad(ctx, os.Args[2:])
	} else if len(os.Args) > 1 && os.Args[1] == "hooks" {
		err = runHooks(ctx)
	} else {
		err = runBench(ctx, os.Args[1:])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcpclose-bench: %v\n", err)
		os.Exit(1)
	}
}

// runLoad is the load generator, run inside the namespace by `ip netns exec`;
// it prints its Result as JSON.
func runLoad(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	w := fs.String("w", "W1", "workload")
	n := fs.Int("n", 10000, "connections")
	d := fs.Duration("d", 5*time.Second, "time bound")
	ipv6 := fs.Bool("6", false, "IPv6")
	rate := fs.Float64("rate", 0, "connections per second (0: as fast as possible)")
	workers := fs.Int("workers", 0, "client workers (0: the workload's default)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := loadgen.Run(ctx, loadgen.Workload(*w), loadgen.Options{Conns: *n, Duration: *d, IPv6: *ipv6, Rate: *rate, Workers: *workers})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// bench is one benchmark run's settings and results.
type bench struct {
	tracer  string
	ringlib string // the tracer built with -tags ringlib; "" for no ring reader A/B
	out     string
	reps    int
	conns   int
	burst   int
	runFor  time.Duration
	quick   bool
	only    string // "bpf" or "sustained": run just that part and print it
	ns      *scenario.Namespace
	dir     string
	samples []sample
	bpf     []bpfStat
	bpfRuns []bpfRun
	benches map[string]goBench // the Go benchmarks of the A/B, by name
	floor   time.Duration      // bpf_stats run time of an empty program
	peers   []peerNote
	steady  []sample // the sustained-rate runs
	tables  []sample // the full-tables runs
	low     []sample // the low-rate runs
}

func (b *bench) tmp(name string) string { return filepath.Join(b.dir, name) }

func runBench(ctx context.Context, args []string) error {
	b := &bench{}
	fs := flag.NewFlagSet("tcpclose-bench", flag.ContinueOnError)
	fs.StringVar(&b.tracer, "tracer", "bin/tcpclose-trace", "the tcpclose-trace binary to measure")
	fs.StringVar(&b.ringlib, "tracer-ringlib", "", "the tracer built with -tags ringlib (cilium/ebpf's ringbuf.Reader), for the A/B of the ring reader; empty to skip it")
	fs.StringVar(&b.out, "o", "BENCHMARKS.md", "report file ('-' for stdout)")
	fs.IntVar(&b.reps, "reps", 3, "repetitions of each (workload, tool) pair, interleaved")
	fs.IntVar(&b.conns, "conns", 20000, "connections per run of W1-W4")
	fs.IntVar(&b.burst, "burst", 200000, "connections of the W5 burst")
	fs.DurationVar(&b.runFor, "duration", 5*time.Second, "time bound of each run (W5: 4x)")
	fs.BoolVar(&b.quick, "quick", false, "smoke run: 1 repetition, 500 connections, no peers")
	fs.StringVar(&b.only, "only", "", "run one part and print it: bpf (run time per program and per connection), sustained (the paced runs), ab (written by hand vs the library), tables (memory with full tables), storms (W3 and W4 with and without the budget), stacks (W1 and W2 with and without --stacks) or peers (which peer tools run here)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if b.quick {
		b.reps, b.conns, b.burst, b.runFor = 1, 500, 2000, 2*time.Second
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it loads BPF programs and creates a network namespace")
	}
	if _, err := os.Stat(b.tracer); err != nil {
		return fmt.Errorf("tracer binary: %w (run make build)", err)
	}
	if b.ringlib != "" {
		if _, err := os.Stat(b.ringlib); err != nil {
			return fmt.Errorf("ringlib tracer binary: %w", err)
		}
	}
	var err error
	if b.dir, err = os.MkdirTemp("", "tcpclose-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.dir)
	if b.ns, err = scenario.NewNamespace(); err != nil {
		return err
	}
	defer b.ns.Close()
	// No TIME_WAIT sockets are kept (tcp_max_tw_buckets 0): otherwise each
	// run would inherit the tens of thousands the previous runs left for
	// 60 s, and a run's rate would depend on its place in the order.
	for key, value := range map[string]string{"net.ipv4.ip_local_port_range": "1024 65535", "net.ipv4.tcp_tw_reuse": "1",
		"net.ipv4.tcp_max_tw_buckets": "0"} {
		if err := b.ns.Sysctl(key, value); err != nil {
			return err
		}
	}

	if !b.quick {
		unmount, err := mountTracefs()
		if err != nil {
			return err
		}
		defer unmount()
	}
	started := time.Now()
	ts := tools(b)
	switch b.only {
	case "bpf":
		if err := b.measureBPF(ctx, ts); err != nil {
			return err
		}
		b.writeBPF(os.Stdout)
		b.writeCPUTime(os.Stdout, nil)
		return nil
	case "ab":
		if err := b.runGoBenchmarks(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "tcpclose-bench: the encoders' Go benchmarks did not run: %v\n", err)
		}
		if err := b.sustained(ctx, sustainedTools(ts)); err != nil {
			return err
		}
		var part []tool
		for _, t := range ts {
			if t.name == "none" || t.name == noBudgetTool || t.name == ringlibTool || t.name == "tcpclose-trace (serve)" {
				part = append(part, t)
			}
		}
		if err := b.throughput(ctx, part, []loadgen.Workload{loadgen.Unread, loadgen.ClosedPort}); err != nil {
			return err
		}
		b.writeAB(os.Stdout, b.groups())
		return nil
	case "sustained":
		if err := b.sustained(ctx, sustainedTools(ts)); err != nil {
			return err
		}
		b.writeSustained(os.Stdout)
		return nil
	case "tables":
		if err := b.fullTables(ctx, ts[1:numOwnTools]); err != nil {
			return err
		}
		b.writeTables(os.Stdout)
		return nil
	case "storms", "stacks":
		if b.only == "storms" {
			if err := b.lowRate(ctx, ts[1]); err != nil {
				return err
			}
		}
		// The throughput table of the tools that run on these workloads.
		wls := []loadgen.Workload{loadgen.LingerZero, loadgen.ClosedPort}
		if b.only == "stacks" {
			wls = []loadgen.Workload{loadgen.Graceful, loadgen.Unread}
		}
		var part []tool
		for _, t := range ts {
			own := t.name == "none" || t.name == hooksTool || strings.HasPrefix(t.name, "tcpclose-trace")
			if own && (t.only == nil || slices.ContainsFunc(wls, func(w loadgen.Workload) bool { return slices.Contains(t.only, w) })) {
				part = append(part, t)
			}
		}
		if err := b.throughput(ctx, part, wls); err != nil {
			return err
		}
		b.writeThroughput(os.Stdout, b.groups())
		fmt.Fprintf(os.Stdout, "\n| target | measured | met | context |\n| --- | --- | --- | --- |\n")
		b.cpuTargets(func(why, target, measured string, met bool, context string) {
			fmt.Fprintf(os.Stdout, "| %s | %s | %s | %s |\n", target, measured, map[bool]string{true: "yes", false: "**no**"}[met], context)
		}, b.groups())
		return nil
	case "peers":
		unmount, err := mountTracefs()
		if err != nil {
			return err
		}
		defer unmount()
		b.tryPeers(ctx)
		b.writePeers(os.Stdout)
		return nil
	case "":
	default:
		return fmt.Errorf("-only %q: want bpf, ab, sustained, tables, storms, stacks or peers", b.only)
	}
	if err := b.runGoBenchmarks(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "tcpclose-bench: the encoders' Go benchmarks did not run: %v\n", err)
	}
	if err := b.sustained(ctx, sustainedTools(ts)); err != nil {
		return err
	}
	if err := b.lowRate(ctx, ts[1]); err != nil {
		return err
	}
	if err := b.fullTables(ctx, ts[1:numOwnTools]); err != nil {
		return err
	}
	if err := b.throughput(ctx, ts, loadgen.Workloads); err != nil {
		return err
	}
	if err := b.measureBPF(ctx, ts); err != nil {
		return err
	}
	if !b.quick {
		b.tryPeers(ctx)
	}
	return b.writeReport(time.Since(started))
}

// throughput runs every tool on each of workloads, b.reps times,
// interleaved, and records the samples.
func (b *bench) throughput(ctx context.Context, ts []tool, workloads []loadgen.Workload) error {
	failed := map[int]bool{}
	for rep := 1; rep <= b.reps; rep++ {
		for _, w := range workloads {
			// The order rotates with each repetition: no tool always runs
			// right after the same other one.
			for j := range ts {
				i := (j + rep - 1) % len(ts)
				t := ts[i]
				if failed[i] || t.only != nil && !slices.Contains(t.only, w) {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				s, err := b.runOne(ctx, t, w, rep)
				if err != nil && i >= numOwnTools && t.name != noBudgetTool && t.name != stacksTool && t.name != ringlibTool {
					// A peer that cannot run here is reported, not fatal.
					b.peers = append(b.peers, peerNote{name: t.name, problem: oneLine(err.Error())})
					failed[i] = true
					continue
				}
				if err != nil {
					return fmt.Errorf("%s with %s: %w", w, t.name, err)
				}
				b.samples = append(b.samples, s)
				fmt.Fprintf(os.Stderr, "rep %d %s %-36s %10.0f conn/s  events %d  lost %d\n",
					rep, w, t.name, s.result.PerSecond(), s.events, s.lost)
			}
		}
	}
	return nil
}

// sample is one (tool, workload, repetition) measurement.
type sample struct {
	tool     string
	workload loadgen.Workload
	rep      int
	result   loadgen.Result
	events   int64
	cpu      time.Duration
	ctxSw    int64
	elapsed  time.Duration
	rss      int64
	lost     int64 // ring records lost (the kernel's count)
	dropped  int64 // events the tracer dropped because its output fell behind
	latency  []time.Duration
	// The kernel's count of undrained closes, and the correlation entries
	// the tracer evicted for lack of room; -1 where unread.
	undrained, evicted int64
	suppressed         int64 // events the budget kept from the stream (trace mode's summary); -1 where unread
}

func (b *bench) runOne(ctx context.Context, t tool, w loadgen.Workload, rep int) (sample, error) {
	n, d := b.conns, b.runFor
	if w == loadgen.Burst {
		n, d = b.burst, 4*b.runFor
	}
	return b.runLoad(ctx, t, w, rep, loadArgs{conns: n, duration: d})
}

// loadArgs bound one run of the load generator.
type loadArgs struct {
	conns    int
	duration time.Duration
	rate     float64 // connections per second; 0 for as fast as possible
	workers  int     // 0 for the workload's default
}

// runLoad runs the workload with the tool (if any) attached and measures both.
func (b *bench) runLoad(ctx context.Context, t tool, w loadgen.Workload, rep int, la loadArgs) (sample, error) {
	s := sample{tool: t.name, workload: w, rep: rep, lost: -1, dropped: -1, undrained: -1, evicted: -1, suppressed: -1}
	var r *running
	if t.start != nil {
		var err error
		if r, err = t.start(ctx, b); err != nil {
			return s, err
		}
		defer r.stop()
	}
	res, err := b.load(ctx, w, la)
	if err != nil {
		return s, err
	}
	s.result = res
	if r == nil {
		return s, nil
	}
	time.Sleep(300 * time.Millisecond) // the reader's drain period, and then some
	pid := r.cmd.Process.Pid
	cpu, _ := processCPU(pid)
	sw, _ := contextSwitches(pid)
	s.cpu, s.ctxSw, s.elapsed, s.rss = cpu-r.cpu0, sw-r.ctx0, time.Since(r.started), peakRSS(pid)
	if r.metrics != "" {
		s.lost = scrapeCounter(r.metrics, "tcpclose_ring_lost_records_total")
		s.dropped = scrapeCounter(r.metrics, "tcpclose_events_dropped_total")
		s.undrained = scrapeCounter(r.metrics, `tcpclose_closes_total{kind="undrained_close"}`)
		s.evicted = scrapeCounter(r.metrics, "tcpclose_correlation_evictions_total")
	}
	r.stop()
	r.mu.Lock()
	s.events, s.latency = r.lines, r.latency
	r.mu.Unlock()
	if r.metrics == "" && (r.cmd.Path == b.tracer || r.cmd.Path == b.ringlib) {
		s.lost = summaryCount(r.stderr.String(), "ring records lost")
		s.dropped = summaryCount(r.stderr.String(), "events dropped (slow output)")
		s.undrained = summaryCount(r.stderr.String(), "undrained_close")
		s.evicted = summaryCount(r.stderr.String(), "correlation entries evicted")
		s.suppressed = summarySuppressed(r.stderr.String())
	}
	return s, nil
}

// load runs the workload inside the namespace.
func (b *bench) load(ctx context.Context, w loadgen.Workload, la loadArgs) (loadgen.Result, error) {
	self, err := os.Executable()
	if err != nil {
		return loadgen.Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, la.duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", b.ns.Name, self, "load",
		"-w", string(w), "-n", fmt.Sprint(la.conns), "-d", la.duration.String(),
		"-rate", fmt.Sprint(la.rate), "-workers", fmt.Sprint(la.workers))
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return loadgen.Result{}, fmt.Errorf("load: %v: %s", err, firstLine(string(ee.Stderr)))
		}
		return loadgen.Result{}, fmt.Errorf("load: %w", err)
	}
	var res loadgen.Result
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("load output %q: %w", out, err)
	}
	return res, nil
}

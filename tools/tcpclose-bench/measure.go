package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/bpfprogs"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
)

// scrapeCounter reads a counter from a serve daemon's metrics; -1 if absent.
func scrapeCounter(base, name string) int64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return -1
}

// summaryCount reads "label N" from the trace mode's exit summary; -1 if absent.
func summaryCount(stderr, label string) int64 {
	for _, line := range strings.Split(stderr, "\n") {
		if v, ok := strings.CutPrefix(line, label); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// summarySuppressed sums the trace mode's exit summary lines of events the
// budget suppressed: 0 if the summary has none, -1 if there is no summary.
func summarySuppressed(stderr string) int64 {
	if summaryCount(stderr, "ring records lost") < 0 {
		return -1
	}
	var n int64
	for _, line := range strings.Split(stderr, "\n") {
		if !strings.Contains(line, "suppressed (over the budget)") {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseInt(f[len(f)-1], 10, 64); err == nil {
			n += v
		}
	}
	return n
}

// bpfStat is one program's run time under one workload, with one tool.
type bpfStat struct {
	workload loadgen.Workload
	tool     string
	program  string
	runs     uint64
	runtime  time.Duration
	misses   uint64 // runs skipped because a BPF program was already running on the CPU
}

// bpfRun is one tool's run under one workload with bpf_stats on: what the
// load did, and its programs' totals.
type bpfRun struct {
	workload loadgen.Workload
	tool     string
	conns    int64 // connections (W8, W9: exchanges) the load completed
	runs     uint64
	runtime  time.Duration
	calls    uint64        // runs of the per-call programs (send and receive)
	callTime time.Duration // their run time
}

// bpfWorkloads are the workloads of the run-time measurement.
var bpfWorkloads = []loadgen.Workload{loadgen.Graceful, loadgen.Unread, loadgen.LingerZero, loadgen.ClosedPort, loadgen.Burst,
	loadgen.PingPong, loadgen.Bulk}

// perCallProgram says whether a program of ours runs on every send or receive.
func perCallProgram(name string) bool {
	return strings.Contains(name, "send_length") || strings.Contains(name, "recv_length") ||
		strings.Contains(name, "sendmsg") || strings.Contains(name, "recvmsg")
}

// measureBPF runs each workload, once, with kernel.bpf_stats_enabled under
// the trace mode, the trace mode with --stacks (W1, W2) and with no budget
// (W3, W4), the empty programs
// and the bpftrace script, and records each program's run count and run
// time, and the connections the load completed.
func (b *bench) measureBPF(ctx context.Context, ts []tool) error {
	const sysctl = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		return fmt.Errorf("read %s: %w", sysctl, err)
	}
	if err := os.WriteFile(sysctl, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable BPF stats: %w", err)
	}
	defer os.WriteFile(sysctl, old, 0o644)
	floor, err := newEmptyProgram("sock_recv_length")
	if err != nil {
		return err
	}
	defer floor.Close()
	var measured []tool
	for _, t := range ts {
		if t.name == traceTool || t.name == stacksTool || t.name == hooksTool || strings.HasPrefix(t.name, "bpftrace") {
			measured = append(measured, t)
		}
		if t.name == noBudgetTool { // on the storms only: what the budget saves in the kernel
			t.only = []loadgen.Workload{loadgen.LingerZero, loadgen.ClosedPort}
			measured = append(measured, t)
		}
	}
	var floorRuns uint64
	var floorTime time.Duration
	for _, w := range bpfWorkloads {
		for _, t := range measured {
			if t.only != nil && !slices.Contains(t.only, w) {
				continue
			}
			r, err := t.start(ctx, b)
			if err != nil {
				if strings.HasPrefix(t.name, "bpftrace") {
					continue // a peer that cannot run here is reported by the throughput runs
				}
				return err
			}
			before := programStats(w, r.cmd.Process.Pid)
			f0, _ := floor.prog.Stats()
			res, err := b.load(ctx, w, loadArgs{conns: b.conns, duration: b.runFor})
			if err != nil {
				r.stop()
				return err
			}
			after := programStats(w, r.cmd.Process.Pid)
			f1, _ := floor.prog.Stats()
			r.stop()
			run := bpfRun{workload: w, tool: t.name, conns: res.Conns}
			for name, a := range after {
				p := before[name]
				st := bpfStat{workload: w, tool: t.name, program: name, runs: a.runs - p.runs,
					runtime: a.runtime - p.runtime, misses: a.misses - p.misses}
				b.bpf = append(b.bpf, st)
				run.runs += st.runs
				run.runtime += st.runtime
				if perCallProgram(name) {
					run.calls += st.runs
					run.callTime += st.runtime
				}
			}
			b.bpfRuns = append(b.bpfRuns, run)
			if f0 != nil && f1 != nil && f1.RunCount > f0.RunCount {
				floorRuns += f1.RunCount - f0.RunCount
				floorTime += f1.Runtime - f0.Runtime
			}
			fmt.Fprintf(os.Stderr, "bpf %s %-36s runs/conn %.1f  ns/conn %.0f\n", w, t.name,
				float64(run.runs)/float64(max(1, run.conns)), float64(run.runtime.Nanoseconds())/float64(max(1, run.conns)))
		}
	}
	if floorRuns > 0 {
		b.floor = floorTime / time.Duration(floorRuns)
	}
	sort.SliceStable(b.bpf, func(i, j int) bool {
		if b.bpf[i].workload != b.bpf[j].workload {
			return b.bpf[i].workload < b.bpf[j].workload
		}
		return b.bpf[i].program < b.bpf[j].program
	})
	return nil
}

// programStats reads the run statistics of the programs the process pid
// holds (the tracer under test, not another instance on the host), by name.
func programStats(w loadgen.Workload, pid int) map[string]bpfStat {
	stats := map[string]bpfStat{}
	held, _ := bpfprogs.Held(pid) // none once it is gone
	for _, id := range held {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, ierr := p.Info()
		ps, serr := p.Stats()
		p.Close()
		if ierr != nil || serr != nil {
			continue
		}
		name := info.Name
		s := stats[name]
		stats[name] = bpfStat{workload: w, program: name, runs: s.runs + ps.RunCount, runtime: s.runtime + ps.Runtime,
			misses: s.misses + ps.RecursionMisses}
	}
	return stats
}

// emptyProgram is a tp_btf program that does nothing. Attached where ours
// run most (sock_recv_length), its run time per run is what bpf_stats
// itself adds, the floor under every figure of the table; attached to all
// our tracepoints ("tcpclose-bench hooks"), its throughput is what merely
// hooking them costs.
type emptyProgram struct {
	prog *ebpf.Program
	link link.Link
}

func newEmptyProgram(tracepoint string) (*emptyProgram, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "bench_empty",
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     tracepoint,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		return nil, fmt.Errorf("load the empty program: %w", err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		prog.Close()
		return nil, fmt.Errorf("attach the empty program: %w", err)
	}
	return &emptyProgram{prog: prog, link: l}, nil
}

func (e *emptyProgram) Close() {
	e.link.Close()
	e.prog.Close()
}

// runHooks attaches an empty program to each of tcpclose-trace's
// tracepoints, prints "attached" and waits for ctx to end.
func runHooks(ctx context.Context) error {
	tracepoints, err := collector.Tracepoints()
	if err != nil {
		return err
	}
	for _, tp := range tracepoints {
		e, err := newEmptyProgram(tp)
		if err != nil {
			return fmt.Errorf("%s: %w", tp, err)
		}
		defer e.Close()
	}
	fmt.Println("attached")
	<-ctx.Done()
	return nil
}

// peerNote is what happened when a peer tool was tried.
type peerNote struct {
	name    string
	ran     bool
	problem string
}

// tryPeers runs the peer tools that need more than tracepoints (bcc's
// tcpstates and tcplife, bpftrace's tcplife.bt) where they start, under W1
// and W2, and notes why where they do not.
func (b *bench) tryPeers(ctx context.Context) {
	peers := []struct {
		name string
		argv []string
	}{
		{"bcc tcpstates", []string{"tcpstates-bpfcc"}},
		{"bcc tcplife", []string{"tcplife-bpfcc"}},
		{"bpftrace tcplife.bt", []string{"bpftrace", "/usr/sbin/tcplife.bt"}},
	}
	for _, p := range peers {
		if _, err := exec.LookPath(p.argv[0]); err != nil {
			b.peers = append(b.peers, peerNote{name: p.name, problem: "not installed"})
			continue
		}
		if p.argv[0] == "bpftrace" {
			if _, err := os.Stat(p.argv[1]); err != nil {
				b.peers = append(b.peers, peerNote{name: p.name, problem: "not installed"})
				continue
			}
		}
		argv := p.argv
		t := tool{name: p.name, start: func(ctx context.Context, b *bench) (*running, error) {
			r, err := launch(ctx, argv[0], argv[1:], false)
			if err != nil {
				return nil, err
			}
			return r, r.waitFor(func() bool { return r.countLines() > 0 })
		}}
		if problem := b.probePeer(ctx, t); problem != "" {
			b.peers = append(b.peers, peerNote{name: p.name, problem: problem})
			continue
		}
		b.peers = append(b.peers, peerNote{name: p.name, ran: true})
		for rep := 1; rep <= b.reps; rep++ {
			for _, w := range []loadgen.Workload{loadgen.Graceful, loadgen.Unread} {
				for _, tt := range []tool{{name: "none"}, t} {
					s, err := b.runOne(ctx, tt, w, rep)
					if err != nil {
						b.peers[len(b.peers)-1].problem = oneLine(err.Error())
						continue
					}
					s.tool = tt.name
					if tt.start == nil {
						s.tool = "none (paired with " + p.name + ")"
					}
					b.samples = append(b.samples, s)
				}
			}
		}
	}
}

// probePeer starts a peer, drives a little traffic and says why the peer
// does not work here ("" when it printed at least one event line).
func (b *bench) probePeer(ctx context.Context, t tool) string {
	r, err := t.start(ctx, b)
	if r == nil {
		return oneLine(err.Error())
	}
	if err == nil {
		_, err = b.load(ctx, loadgen.Graceful, loadArgs{conns: 200, duration: 5 * time.Second})
		time.Sleep(500 * time.Millisecond)
		early, exitErr := r.exitedEarly()
		r.stop()
		if early && err == nil {
			err = fmt.Errorf("exited while tracing: %v: %s", exitErr, firstLine(r.stderr.String()))
		}
	}
	<-r.exited
	stderr := r.stderr.String()
	if strings.Contains(stderr, "kprobe") && (strings.Contains(stderr, "rror attaching") || strings.Contains(stderr, "kprobe_events")) {
		return "cannot attach: no kprobes on this kernel (" + oneLine(firstMatch(stderr, "rror attaching")) + ")"
	}
	if err != nil {
		return oneLine(err.Error())
	}
	if r.eventLines() == 0 {
		return "printed no event line for 200 connections: " + oneLine(firstLine(stderr))
	}
	return ""
}

// firstMatch is the first line of s that contains sub, else the first line.
func firstMatch(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return firstLine(s)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// mountTracefs mounts tracefs where bpftrace looks for tracepoint formats,
// if it is not mounted; the returned func unmounts what it mounted.
func mountTracefs() (func(), error) {
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(dir + "/events"); err == nil {
		return func() {}, nil
	}
	if out, err := exec.Command("mount", "-t", "tracefs", "nodev", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mount tracefs: %v: %s", err, out)
	}
	return func() { _ = exec.Command("umount", dir).Run() }, nil
}

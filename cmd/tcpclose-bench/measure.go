package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/loadgen"
)

// scrapeLost reads tcpclose_ring_lost_records_total from a serve daemon.
func scrapeLost(base string) int64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tcpclose_ring_lost_records_total "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return int64(f)
		}
	}
	return -1
}

// summaryLost reads "ring records lost N" from the trace mode's exit summary.
func summaryLost(stderr string) int64 {
	for _, line := range strings.Split(stderr, "\n") {
		if v, ok := strings.CutPrefix(line, "ring records lost"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// bpfStat is one program's run time under one workload.
type bpfStat struct {
	workload loadgen.Workload
	program  string
	runs     uint64
	runtime  time.Duration
}

// measureBPF runs the tracer under W1 and W2 with kernel.bpf_stats_enabled
// and records each program's run count and run time.
func (b *bench) measureBPF(ctx context.Context, t tool) error {
	const sysctl = "/proc/sys/kernel/bpf_stats_enabled"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		return fmt.Errorf("read %s: %w", sysctl, err)
	}
	if err := os.WriteFile(sysctl, []byte("1"), 0o644); err != nil {
		return fmt.Errorf("enable BPF stats: %w", err)
	}
	defer os.WriteFile(sysctl, old, 0o644)
	for _, w := range []loadgen.Workload{loadgen.Graceful, loadgen.Unread} {
		r, err := t.start(ctx, b)
		if err != nil {
			return err
		}
		before := programStats(w)
		if _, err := b.load(ctx, w, b.conns, b.runFor); err != nil {
			r.stop()
			return err
		}
		after := programStats(w)
		r.stop()
		for name, a := range after {
			p := before[name]
			b.bpf = append(b.bpf, bpfStat{workload: w, program: name, runs: a.runs - p.runs, runtime: a.runtime - p.runtime})
		}
	}
	sort.Slice(b.bpf, func(i, j int) bool {
		if b.bpf[i].workload != b.bpf[j].workload {
			return b.bpf[i].workload < b.bpf[j].workload
		}
		return b.bpf[i].program < b.bpf[j].program
	})
	return nil
}

// programStats reads the run statistics of the loaded programs named like ours.
func programStats(w loadgen.Workload) map[string]bpfStat {
	stats := map[string]bpfStat{}
	collector.EachLoaded(func(_ ebpf.ProgramID, name string, p *ebpf.Program) {
		ps, err := p.Stats()
		if err != nil {
			return
		}
		s := stats[name]
		stats[name] = bpfStat{workload: w, program: name, runs: s.runs + ps.RunCount, runtime: s.runtime + ps.Runtime}
	})
	return stats
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
		r, err := t.start(ctx, b)
		if err != nil {
			b.peers = append(b.peers, peerNote{name: p.name, problem: oneLine(err.Error())})
			continue
		}
		r.stop()
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

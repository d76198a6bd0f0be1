package e2e

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// TestStormBudget hammers a closed port with 3,000 connections under a
// budget of 100 events per kind and second: every reset is counted exactly
// (equal to the namespace's counters), at most the budget is streamed,
// the rest is counted as suppressed (streamed + suppressed = counted, by
// kind and by reason), and the storm table names the port that was hit
// and who hit it, with the exact suppressed count.
func TestStormBudget(t *testing.T) {
	requireHost(t)
	const (
		budget = 100
		conns  = 3000
	)
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	perCPU := (budget + cpus - 1) / cpus
	for _, family := range []string{"ipv4", "ipv6"} {
		t.Run(family, func(t *testing.T) {
			ns := newNamespace(t)
			tr := startTracer(t, collector.Options{Netns: ns.Inode, Budget: budget})
			before := takeSnapshot(t, ns, tr)
			start := time.Now()
			r, err := scenario.RunStorm(ns, family, conns)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			events := tr.since(0)
			after := takeSnapshot(t, ns, tr)
			mib, d := after.mib.Delta(before.mib), bpfDelta(after.bpf, before.bpf)
			checkKernelAgreement(t, tr.c.Reasons(), false, events, mib, d)

			if got := d.Kind(collector.KindResetSent); got != conns {
				t.Errorf("reset_sent counted %d, want one per connection (%d)", got, conns)
			}
			streamed := map[collector.Kind]uint64{}
			for _, ev := range events {
				streamed[ev.Kind]++
			}
			// Each CPU streams at most perCPU of a kind per second; the run
			// touches at most ceil(elapsed)+1 seconds.
			limit := uint64(perCPU * cpus * (int(math.Ceil(elapsed.Seconds())) + 1))
			for _, k := range []collector.Kind{collector.KindResetSent, collector.KindResetReceived} {
				if streamed[k] > limit {
					t.Errorf("%s: %d streamed in %v, over the budget's %d", k, streamed[k], elapsed, limit)
				}
				if d.Suppressed[k] == 0 {
					t.Errorf("%s: nothing suppressed: the storm did not exceed the budget (%d streamed in %v)", k, streamed[k], elapsed)
				}
			}
			t.Logf("%d connections in %v: streamed %d reset_sent, %d reset_received; suppressed %d, %d",
				conns, elapsed, streamed[collector.KindResetSent], streamed[collector.KindResetReceived],
				d.Suppressed[collector.KindResetSent], d.Suppressed[collector.KindResetReceived])
			var byReason uint64
			for _, n := range d.SuppressedReasons {
				byReason += n
			}
			if byReason != d.Suppressed[collector.KindResetSent] {
				t.Errorf("suppressed resets by reason %d, suppressed reset_sent %d", byReason, d.Suppressed[collector.KindResetSent])
			}
			if v, ok := tr.c.Reasons().Value("NO_SOCKET"); ok && d.SuppressedReasons[v] != d.Suppressed[collector.KindResetSent] {
				t.Errorf("suppressed NO_SOCKET resets %d, want all %d", d.SuppressedReasons[v], d.Suppressed[collector.KindResetSent])
			}

			sources, err := tr.c.StormSources()
			if err != nil {
				t.Fatal(err)
			}
			client := netip.MustParseAddr(map[string]string{"ipv4": "127.0.0.1", "ipv6": "::1"}[family])
			var hit, received uint64
			for _, s := range sources {
				switch {
				case s.Kind == collector.KindResetSent && s.RAddr == client && s.Port == r.Port:
					hit += s.Count
				case s.Kind == collector.KindResetSent:
					t.Errorf("unexpected reset_sent source %+v", s)
				case s.Kind == collector.KindResetReceived:
					received += s.Count
				}
			}
			if hit != d.Suppressed[collector.KindResetSent] {
				t.Errorf("storm table: %d resets sent for %s -> :%d, want every suppressed one (%d); sources %+v",
					hit, client, r.Port, d.Suppressed[collector.KindResetSent], sources)
			}
			if received == 0 || received > d.Suppressed[collector.KindResetReceived] {
				t.Errorf("storm table: %d resets received, want some and at most the %d suppressed", received, d.Suppressed[collector.KindResetReceived])
			}
			if again, err := tr.c.StormSources(); err != nil || len(again) != 0 {
				t.Errorf("a second read: %+v, %v; want nothing new", again, err)
			}
		})
	}
}

// TestCLIStorm runs the built command in its table mode with a small budget
// through a storm: the table tells what was suppressed and who hit which
// port, and the summary counts the suppressed events by kind and names
// the largest sources.
func TestCLIStorm(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	ns := newNamespace(t)
	run := startCLI(t, bin, "--budget", "20", "--netns", strconv.FormatUint(uint64(ns.Inode), 10))
	r, err := scenario.RunStorm(ns, "ipv4", 2000)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the streamed events reach the table
	run.stop(t)
	out := run.stdout.String()
	hit := fmt.Sprintf("127.0.0.1 -> :%d ", r.Port)
	for _, want := range []string{
		"reset_sent " + kernelResets(t).Reason("NO_SOCKET") + " suppressed in the last", "(over the budget); top: " + hit,
		"reset_sent suppressed (over the budget)", "reset_received suppressed (over the budget)",
		"SUPPRESSED, LARGEST SOURCES", hit,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

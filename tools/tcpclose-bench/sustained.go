package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
)

// sustainedEventsPerConn: each W4 connection is one reset_sent (NO_SOCKET)
// and one reset_received (the client's SYN_SENT socket), both streamed.
const sustainedEventsPerConn = 2

// sustainedRate is the paced event rate of the sustained runs.
func (b *bench) sustainedRate() float64 {
	if b.quick {
		return 10000
	}
	return 100000
}

// sustainedTools are the tools of the sustained runs: our two modes, and
// the trace mode without a budget with each ring reader.
func sustainedTools(ts []tool) []tool {
	var st []tool
	for _, t := range ts {
		if strings.HasPrefix(t.name, "tcpclose-trace") && t.name != stacksTool {
			st = append(st, t)
		}
	}
	return st
}

// lowRate runs W2 paced at lowRateConns connections per second (two
// events each, under the default budget) with the trace mode: at low rates
// nothing is suppressed and the latency is the drain period's.
func (b *bench) lowRate(ctx context.Context, t tool) error {
	n := lowRateConns * 10
	if b.quick {
		n = lowRateConns
	}
	// Only the benchmark's namespace: the host's other traffic (this
	// machine is shared) would spend the budget.
	t.start = func(ctx context.Context, b *bench) (*running, error) {
		return b.startTrace(ctx, "--netns", fmt.Sprint(b.ns.Inode))
	}
	s, err := b.runLoad(ctx, t, loadgen.Unread, 1, loadArgs{conns: n, duration: 30 * time.Second, rate: lowRateConns, workers: 1})
	if err != nil {
		return fmt.Errorf("low rate: %w", err)
	}
	b.low = append(b.low, s)
	fmt.Fprintf(os.Stderr, "low rate %s: events %d suppressed %d\n", t.name, s.events, s.suppressed)
	return nil
}

// lowRateConns is the low-rate run's connections per second.
const lowRateConns = 100

// sustained runs W4 paced at sustainedRate events per second for ten
// seconds (quick: one) under each of our modes, for the ring loss and drops
// at a steady high rate rather than a burst.
func (b *bench) sustained(ctx context.Context, ours []tool) error {
	rate := b.sustainedRate() / sustainedEventsPerConn
	d := 10 * time.Second
	if b.quick {
		d = time.Second
	}
	la := loadArgs{conns: int(rate * d.Seconds()), duration: 3 * d, rate: rate, workers: 4}
	for _, t := range ours {
		s, err := b.runLoad(ctx, t, loadgen.ClosedPort, 1, la)
		if err != nil {
			return fmt.Errorf("sustained %s: %w", t.name, err)
		}
		b.steady = append(b.steady, s)
		fmt.Fprintf(os.Stderr, "sustained %-36s %10.0f events/s  events %d  lost %d  dropped %d\n",
			t.name, float64(s.result.Conns*sustainedEventsPerConn)/s.result.Elapsed.Seconds(), s.events, s.lost, s.dropped)
	}
	return nil
}

package e2e

import (
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// TestKernelFilters checks that --comm, --pid and --port select in the
// kernel: the other end's events are neither streamed nor counted.
func TestKernelFilters(t *testing.T) {
	requireHost(t)
	ns := newNamespace(t)

	t.Run("comm", func(t *testing.T) {
		tr := startTracer(t, collector.Options{Netns: ns.Inode, Comm: "tct-peer"})
		r, err := scenario.Run(ns, "unread_close", "ipv4")
		if err != nil {
			t.Fatal(err)
		}
		events := tr.since(0)
		if len(events) != 1 || events[0].Kind != collector.KindResetReceived || int(events[0].PID) != r.Peer.PID {
			t.Fatalf("events = %+v, want only the peer's reset_received", events)
		}
		c, _ := tr.c.Counters()
		if c.Kind(collector.KindUnreadClose) != 0 || c.Kind(collector.KindResetReceived) != 1 || c.ResetsSent() != 0 {
			t.Errorf("counters count filtered-out events: %+v", c.Kinds)
		}
	})
	t.Run("comm names the process", func(t *testing.T) {
		// The close is made by a thread named otherwise: --comm matches
		// the process's name, and the event names the thread too.
		tr := startTracer(t, collector.Options{Netns: ns.Inode, Comm: "tct-closer"})
		r, err := scenario.Run(ns, "worker_thread", "ipv6")
		if err != nil {
			t.Fatal(err)
		}
		events := tr.since(0)
		if len(events) != 1 || events[0].Kind != collector.KindUnreadClose || int(events[0].PID) != r.Closer.PID ||
			events[0].Comm != "tct-closer" || events[0].Thread != scenario.WorkerThread || int(events[0].TID) == r.Closer.PID {
			t.Fatalf("events = %+v, want only the closer's unread_close, made by its thread %s", events, scenario.WorkerThread)
		}
	})
	t.Run("pid", func(t *testing.T) {
		// The closer's pid is known only once it runs: filter on a pid
		// that is not in the scenario, so nothing may pass.
		tr := startTracer(t, collector.Options{Netns: ns.Inode, PID: 1})
		if _, err := scenario.Run(ns, "unread_close", "ipv6"); err != nil {
			t.Fatal(err)
		}
		if events := tr.since(0); len(events) != 0 {
			t.Fatalf("events = %+v, want none for pid 1", events)
		}
	})
	t.Run("port", func(t *testing.T) {
		tr := startTracer(t, collector.Options{Netns: ns.Inode, Port: 1})
		if _, err := scenario.Run(ns, "unread_close", "ipv4"); err != nil {
			t.Fatal(err)
		}
		if events := tr.since(0); len(events) != 0 {
			t.Fatalf("events = %+v, want none on port 1", events)
		}
	})
}

// TestRingOverflow fills a one-page ring that is drained rarely: records are
// lost and counted, and the kernel-side counters still equal the MIB deltas.
func TestRingOverflow(t *testing.T) {
	requireHost(t)
	ns := newNamespace(t)
	tr := startTracer(t, collector.Options{Netns: ns.Inode, RingBytes: 4096, WakeupBytes: -1, DrainEvery: 5 * time.Second})
	before := takeSnapshot(t, ns, tr)
	r, err := scenario.RunMixed(ns, "ipv4", 1000)
	if err != nil {
		t.Fatal(err)
	}
	after := takeSnapshot(t, ns, tr)
	tr.stop() // drains what the ring still holds
	events := tr.since(0)
	mib, d := after.mib.Delta(before.mib), bpfDelta(after.bpf, before.bpf)
	if d.RingLost == 0 {
		t.Fatalf("no ring loss with a one-page ring: test did not overflow")
	}
	// Every record the kernel counted was either read or lost. Graceful
	// closes are counted but not streamed; a provisional reset_received
	// cancelled by a local abort (one per data_after_close that aborted a
	// full socket) was streamed but uncounted.
	var counted uint64
	for k, n := range d.Kinds {
		if collector.Kind(k) != collector.KindGracefulClose {
			counted += n
		}
	}
	counted += d.Kind(collector.KindDataAfterClose) - d.TimeWaitRefusals
	decoded := tr.c.Stats().Decoded
	if decoded+d.RingLost != counted {
		t.Errorf("read %d + lost %d != counted %d", decoded, d.RingLost, counted)
	}
	if d.Kind(collector.KindUnreadClose) != mib["TcpExtTCPAbortOnClose"] || d.Kind(collector.KindUnreadClose) != uint64(r.Count[scenario.MixedUnread]) {
		t.Errorf("unread_close counted %d, TcpExtTCPAbortOnClose %d, run %d", d.Kind(collector.KindUnreadClose), mib["TcpExtTCPAbortOnClose"], r.Count[scenario.MixedUnread])
	}
	if d.ResetsSent() != mib["TcpOutRsts"] {
		t.Errorf("resets counted %d, TcpOutRsts %d", d.ResetsSent(), mib["TcpOutRsts"])
	}
	if d.UnreadBytes != r.UnreadBytes || d.RefusedBytes != r.RefusedBytes {
		t.Errorf("bytes counted unread %d refused %d, run %d %d", d.UnreadBytes, d.RefusedBytes, r.UnreadBytes, r.RefusedBytes)
	}
	t.Logf("%d records read (%d events), %d lost, counters exact", decoded, len(events), d.RingLost)
}

package e2e

import (
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// TestMixedLoad runs thousands of mixed connections through one namespace
// and asserts exact equality of streamed events, kernel-side counters and
// the namespace's MIB counters: nothing lost, nothing invented.
func TestMixedLoad(t *testing.T) {
	requireHost(t)
	const perFamily = 2500
	for _, tc := range []struct{ family, finTimeout string }{
		{"ipv4", "60"},  // undrained orphans become TIME_WAIT mini-sockets
		{"ipv6", "120"}, // undrained orphans stay FIN_WAIT2: TCPAbortOnData path
	} {
		t.Run(tc.family, func(t *testing.T) {
			ns := newNamespace(t)
			if err := ns.Sysctl("net.ipv4.tcp_fin_timeout", tc.finTimeout); err != nil {
				t.Fatal(err)
			}
			// Graceful closes are streamed too (All, no budget), so that a
			// count that falls short can name the connection it missed.
			tr := startTracer(t, collector.Options{Netns: ns.Inode, All: true})
			missesBefore := recursionMisses(t, tr)
			before := takeSnapshot(t, ns, tr)
			r, err := scenario.RunMixed(ns, tc.family, perFamily)
			if err != nil {
				t.Fatalf("mixed run: %v", err)
			}
			events := tr.since(0)
			after := takeSnapshot(t, ns, tr)
			// Runs the kernel skipped (a program already running on that CPU)
			// are neither counted nor streamed: shown so that a count gap
			// says whether the kernel skipped any run.
			t.Logf("program runs skipped by the kernel (recursion): %s", recursionMisses(t, tr).since(missesBefore))
			mib, d := after.mib.Delta(before.mib), bpfDelta(after.bpf, before.bpf)
			checkKernelAgreement(t, tr.c.Reasons(), false, events, mib, d)

			streamed := map[collector.Kind]int{}
			for _, ev := range events {
				streamed[ev.Kind]++
				closeKind := ev.Kind == collector.KindUnreadClose || ev.Kind == collector.KindUndrainedClose ||
					ev.Kind == collector.KindAbortClose || ev.Kind == collector.KindDataAfterClose
				if closeKind && (int(ev.PID) != r.Closer.PID || ev.Comm != r.Closer.Comm) {
					t.Errorf("%s attributed to pid %d %q, want the closer %d %q", ev.Kind, ev.PID, ev.Comm, r.Closer.PID, r.Closer.Comm)
				}
			}
			undrained := r.Count[scenario.MixedFinWait] + r.Count[scenario.MixedTimeWait]
			checks := []struct {
				what      string
				got, want int
			}{
				{"unread_close", streamed[collector.KindUnreadClose], r.Count[scenario.MixedUnread]},
				{"undrained_close", streamed[collector.KindUndrainedClose], undrained},
				{"data_after_close", streamed[collector.KindDataAfterClose], undrained},
				{"abort_close", streamed[collector.KindAbortClose], r.Count[scenario.MixedLingerZero]},
				{"reset_sent (NO_SOCKET)", streamed[collector.KindResetSent], r.Count[scenario.MixedClosedPort]},
				{"graceful_close (counted, both ends)", int(d.Kind(collector.KindGracefulClose)), 2 * r.Count[scenario.MixedGraceful]},
				{"graceful_close (streamed, both ends)", streamed[collector.KindGracefulClose], 2 * r.Count[scenario.MixedGraceful]},
				{"unread bytes", int(d.UnreadBytes), int(r.UnreadBytes)},
				{"refused bytes", int(d.RefusedBytes), int(r.RefusedBytes)},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
				}
			}
			missingCloses(t, r, events)
			t.Logf("%d connections: %v; %d events; MIB deltas AbortOnClose=%d AbortOnData=%d OutRsts=%d",
				perFamily, r.Count, len(events), mib["TcpExtTCPAbortOnClose"], mib["TcpExtTCPAbortOnData"], mib["TcpOutRsts"])
		})
	}
}

// missingCloses names each connection of the run whose close was not
// streamed: a graceful one at either end, the closer's (local port = its
// port) or the peer's (local port = the listening port, remote = the
// closer's port), and an undrained one at the closer's end.
func missingCloses(t *testing.T, r *scenario.MixedResult, events []collector.Event) {
	t.Helper()
	type end struct {
		kind         collector.Kind
		lport, rport uint16
	}
	seen := map[end]int{}
	for _, ev := range events {
		seen[end{ev.Kind, ev.LPort, ev.RPort}]++
	}
	for i, port := range r.GracefulPorts {
		for _, e := range []struct {
			who string
			end end
		}{{"closer", end{collector.KindGracefulClose, port, r.PeerPort}}, {"peer", end{collector.KindGracefulClose, r.PeerPort, port}}} {
			if seen[e.end] == 0 {
				t.Errorf("graceful connection %d of %d (closer port %d): no graceful_close from the %s's end",
					i+1, len(r.GracefulPorts), port, e.who)
			}
		}
	}
	for i, port := range r.UndrainedPorts {
		if seen[end{collector.KindUndrainedClose, port, r.PeerPort}] == 0 {
			t.Errorf("undrained connection %d of %d (closer port %d): no undrained_close; its other events:",
				i+1, len(r.UndrainedPorts), port)
			for _, ev := range events {
				if (ev.LPort == port && ev.RPort == r.PeerPort) || (ev.LPort == r.PeerPort && ev.RPort == port) {
					t.Errorf("  %+v", ev)
				}
			}
		}
	}
}

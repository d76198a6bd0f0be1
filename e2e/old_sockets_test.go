package e2e

import (
	"slices"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/expect"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// TestOldSockets starts the tracer after the scenario's sockets exist and
// the peer's data waits unread: the closer's close, and the reset the
// peer's socket (also older than the tracer, and idle since) receives in
// softirq, are each attributed to their process, with the namespace's
// counters in exact agreement.
func TestOldSockets(t *testing.T) {
	requireHost(t)
	for _, family := range []string{"ipv4", "ipv6"} {
		t.Run(family, func(t *testing.T) {
			ns := newNamespace(t)
			var tr *tracer
			var before snapshot
			r, err := scenario.RunPaused(ns, "old_socket", family, func() error {
				tr = startTracer(t, collector.Options{Netns: ns.Inode})
				before = takeSnapshot(t, ns, tr)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if tr == nil {
				t.Fatal("the scenario never paused: the tracer did not start")
			}
			events := tr.since(0)
			after := takeSnapshot(t, ns, tr)
			// The closer's listener and accepted socket and the peer's socket.
			if n := tr.c.OldSockets(); n < 3 {
				t.Errorf("the iterator recorded %d open TCP sockets, want at least the scenario's 3", n)
			}
			kernel := expect.FromReasons(tr.c.Reasons())
			got, want := observed(t, events, r, family), expected(kernel, "old_socket", r)
			if !slices.Equal(got, want) {
				t.Errorf("events:\n  got  %v\n  want %v", got, want)
			}
			checkKernelAgreement(t, tr.c.Reasons(), false, events, after.mib.Delta(before.mib), bpfDelta(after.bpf, before.bpf))
		})
	}
}

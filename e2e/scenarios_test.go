package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// want is one expected event, in the fields the suite asserts exactly.
type want struct {
	kind    collector.Kind
	who     string // "closer", "peer" or "" (no owner)
	lport   uint16
	rport   uint16
	unread  uint32
	unsent  uint32
	refused uint32
	reason  string
}

func (w want) String() string {
	return fmt.Sprintf("%s who=%s lport=%d rport=%d unread=%d unsent=%d refused=%d reason=%s",
		w.kind, w.who, w.lport, w.rport, w.unread, w.unsent, w.refused, w.reason)
}

// observed reduces an event to a want, naming its owner by role.
func observed(ev collector.Event, r *scenario.Result, family string) (want, error) {
	w := want{kind: ev.Kind, lport: ev.LPort, rport: ev.RPort, unread: ev.UnreadBytes,
		unsent: ev.UnsentBytes, refused: ev.RefusedBytes, reason: ev.Reason}
	if ev.Kind != collector.KindResetSent && ev.Kind != collector.KindDataAfterClose {
		w.reason = "" // reasons belong to resets sent
	}
	switch {
	case !ev.OwnerKnown:
	case int(ev.PID) == r.Closer.PID && ev.Comm == r.Closer.Comm:
		w.who = "closer"
	case r.Peer.PID != 0 && int(ev.PID) == r.Peer.PID && ev.Comm == r.Peer.Comm:
		w.who = "peer"
	default:
		w.who = fmt.Sprintf("pid %d comm %q", ev.PID, ev.Comm)
	}
	if ev.Family() != family {
		return w, fmt.Errorf("%s: family %s, want %s", ev.Kind, ev.Family(), family)
	}
	return w, nil
}

// expected lists the events each scenario must produce, nothing more.
func expected(name string, r *scenario.Result) []want {
	c, p := r.CloserPort, r.PeerPort
	switch name {
	case "unread_close":
		return []want{
			{kind: collector.KindUnreadClose, who: "closer", lport: c, rport: p, unread: r.UnreadBytes},
			{kind: collector.KindResetReceived, who: "peer", lport: p, rport: c},
		}
	case "undrained_fin_wait":
		return []want{
			{kind: collector.KindUndrainedClose, who: "closer", lport: c, rport: p},
			{kind: collector.KindDataAfterClose, who: "closer", lport: c, rport: p, refused: r.RefusedBytes, reason: "TCP_ABORT_ON_DATA"},
			{kind: collector.KindResetReceived, who: "peer", lport: p, rport: c},
		}
	case "undrained_time_wait":
		return []want{
			{kind: collector.KindUndrainedClose, who: "closer", lport: c, rport: p},
			{kind: collector.KindDataAfterClose, who: "closer", lport: c, rport: p, refused: r.RefusedBytes, reason: "TCP_TIMEWAIT_SOCKET"},
			{kind: collector.KindResetReceived, who: "peer", lport: p, rport: c},
		}
	case "linger_zero":
		return []want{
			{kind: collector.KindAbortClose, who: "closer", lport: c, rport: p, unsent: r.UnsentBytes},
			{kind: collector.KindResetReceived, who: "peer", lport: p, rport: c},
		}
	case "graceful":
		return []want{
			{kind: collector.KindGracefulClose, who: "closer", lport: c, rport: p},
			{kind: collector.KindGracefulClose, who: "peer", lport: p, rport: c},
		}
	case "closed_port":
		return []want{
			{kind: collector.KindResetSent, lport: p, rport: c, reason: "NO_SOCKET"},
			{kind: collector.KindResetReceived, who: "closer", lport: c, rport: p},
		}
	case "peer_reset":
		return []want{
			{kind: collector.KindAbortClose, who: "closer", lport: c, rport: p},
			{kind: collector.KindResetReceived, who: "peer", lport: p, rport: c},
		}
	}
	return nil
}

func sortWants(ws []want) {
	slices.SortFunc(ws, func(a, b want) int { return strings.Compare(a.String(), b.String()) })
}

// TestScenarios drives every close pattern over real loopback sockets, IPv4
// and IPv6, in a private namespace, and asserts the exact events and their
// exact agreement with the namespace's kernel counters.
func TestScenarios(t *testing.T) {
	requireHost(t)
	ns := newNamespace(t)
	tr := startTracer(t, collector.Options{Netns: ns.Inode, All: true})

	for _, family := range []string{"ipv4", "ipv6"} {
		for _, name := range scenario.Names() {
			t.Run(family+"/"+name, func(t *testing.T) {
				finTimeout := "60" // the default: an orphan FIN_WAIT2 becomes a TIME_WAIT mini-socket
				if name == "undrained_fin_wait" {
					finTimeout = "120" // above 60 s the orphan stays a full FIN_WAIT2 socket
				}
				if err := ns.Sysctl("net.ipv4.tcp_fin_timeout", finTimeout); err != nil {
					t.Fatal(err)
				}
				mark := tr.mark()
				before := takeSnapshot(t, ns, tr)
				r, err := scenario.Run(ns, name, family)
				if err != nil {
					t.Fatalf("run scenario: %v", err)
				}
				events := tr.since(mark)
				after := takeSnapshot(t, ns, tr)

				var got []want
				for _, ev := range events {
					w, err := observed(ev, r, family)
					if err != nil {
						t.Error(err)
					}
					got = append(got, w)
					if ev.Netns != ns.Inode {
						t.Errorf("%s: netns %d, want %d", ev.Kind, ev.Netns, ns.Inode)
					}
					if ev.Time.Before(before.took) || ev.Time.After(after.took) {
						t.Errorf("%s: time %v outside the scenario [%v, %v]", ev.Kind, ev.Time, before.took, after.took)
					}
				}
				wantEvents := expected(name, r)
				sortWants(got)
				sortWants(wantEvents)
				if !slices.Equal(got, wantEvents) {
					t.Errorf("events:\n  got  %v\n  want %v", got, wantEvents)
				}
				checkKernelAgreement(t, tr.c.Reasons(), true, events, after.mib.Delta(before.mib), bpfDelta(after.bpf, before.bpf))
			})
		}
	}
}

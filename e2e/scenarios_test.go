package e2e

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/expect"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/selftest"
)

// observed reduces the events to the table's form, sorted, asserting the
// family of each.
func observed(t *testing.T, events []collector.Event, r *scenario.Result, family string) []string {
	t.Helper()
	got := make([]string, 0, len(events))
	for i := range events {
		if f := events[i].Family(); f != family {
			t.Errorf("%s: family %s, want %s", events[i].Kind, f, family)
		}
		got = append(got, expect.Observed(&events[i], r).String())
	}
	slices.Sort(got)
	return got
}

// expected is the table's events for the scenario on this kernel, sorted.
func expected(k expect.Kernel, name string, r *scenario.Result) []string {
	var want []string
	for _, w := range expect.Events(k, name, r) {
		want = append(want, w.String())
	}
	slices.Sort(want)
	return want
}

// TestScenarios drives every close pattern over real loopback sockets, IPv4
// and IPv6, in a private namespace, and asserts the exact events and their
// exact agreement with the namespace's kernel counters.
func TestScenarios(t *testing.T) {
	requireHost(t)
	ns := newNamespace(t)
	runScenarios(t, ns, startTracer(t, collector.Options{Netns: ns.Inode, All: true}))
}

// kprobePMU is where the kernel offers kprobes to perf_event_open (the
// way the tracer attaches them); a kernel built without CONFIG_KPROBES
// has none.
const kprobePMU = "/sys/bus/event_source/devices/kprobe"

// TestScenariosKprobes is TestScenarios with kprobes in place of every
// function hook (Options.ForceKprobes), as on a kernel that refuses
// trampolines (Debian's arm64 6.1): the send and receive hooks are kprobes
// on tcp_sendmsg and tcp_recvmsg here whatever the kernel, so the owner of
// a handed-over socket comes through probed_users; before 6.10 the resets
// of mini-sockets and of segments with no socket come from kprobes on
// tcp_v4_send_reset and tcp_v6_send_reset too. From 6.10 tcp_send_reset
// sees those itself and the reset functions are not hooked: nothing is
// counted twice. Every scenario's events and counters must be exact.
func TestScenariosKprobes(t *testing.T) {
	requireHost(t)
	if _, err := os.Stat(kprobePMU); err != nil {
		t.Skipf("this kernel has no kprobes (built without CONFIG_KPROBES: %v)", err)
	}
	ns := newNamespace(t)
	tr := startTracer(t, collector.Options{Netns: ns.Inode, All: true, ForceKprobes: true})
	hooks := tr.c.Hooks()
	t.Logf("hooks: %q", hooks)
	for _, want := range []string{"kprobe tcp_sendmsg", "kprobe tcp_recvmsg"} {
		if !slices.Contains(hooks, want) {
			t.Errorf("hooks %q lack %s", hooks, want)
		}
	}
	for _, h := range hooks {
		if strings.HasPrefix(h, "function ") || h == "tracepoint sock_send_length" || h == "tracepoint sock_recv_length" {
			t.Errorf("hooks %q: %s attached with kprobes forced", hooks, h)
		}
	}
	for _, l := range tr.c.Lost() {
		if strings.Contains(l, "kprobe") {
			t.Errorf("lost: %s", l)
		}
	}
	runScenarios(t, ns, tr)
}

// TestSettledReuse runs the handoff scenario again and again under one
// tracer: each round's accepted socket is freed, and the next one's memory
// is most often the same (the slab hands back what was freed last). The
// send that settles the new socket's owner (the process it was handed to)
// must not be answered by the cache of settled sockets for the old one:
// its slot is cleared when the old socket is destroyed.
func TestSettledReuse(t *testing.T) {
	requireHost(t)
	ns := newNamespace(t)
	runRounds(t, ns, startTracer(t, collector.Options{Netns: ns.Inode, All: true}), []string{"handoff"}, 10)
}

// runScenarios runs every scenario, IPv4 and IPv6, under tr, which traces ns.
func runScenarios(t *testing.T, ns *scenario.Namespace, tr *tracer) {
	runRounds(t, ns, tr, scenario.Names(), 1)
}

// runRounds runs the scenarios names, IPv4 and IPv6, rounds times each,
// under tr, which traces ns.
func runRounds(t *testing.T, ns *scenario.Namespace, tr *tracer, names []string, rounds int) {
	kernel := expect.FromReasons(tr.c.Reasons())
	kernel.UsersProbed = tr.c.UsersProbed()
	t.Logf("kernel: %v", kernel)

	for _, family := range []string{"ipv4", "ipv6"} {
		for i := range rounds * len(names) {
			name := names[i%len(names)]
			sub := family + "/" + name
			if rounds > 1 {
				sub += fmt.Sprintf("/%d", i/len(names)+1)
			}
			t.Run(sub, func(t *testing.T) {
				finTimeout := "60" // the default: an orphan FIN_WAIT2 becomes a TIME_WAIT mini-socket
				if name == "undrained_fin_wait" {
					finTimeout = "120" // above 60 s the orphan stays a full FIN_WAIT2 socket
				}
				if err := ns.Sysctl("net.ipv4.tcp_fin_timeout", finTimeout); err != nil {
					t.Fatal(err)
				}
				if name == "no_storage" && kernelSupport(t).Compat {
					t.Skip(selftest.WhyNoStorageCompat)
				}
				mark := tr.mark()
				before := takeSnapshot(t, ns, tr)
				r, err := scenario.Run(ns, name, family)
				if errors.Is(err, scenario.ErrUnsupported) {
					t.Skipf("skipped: %v", err)
				}
				if err != nil {
					t.Fatalf("run scenario: %v", err)
				}
				events := tr.since(mark)
				after := takeSnapshot(t, ns, tr)

				for _, ev := range events {
					if ev.Netns != ns.Inode {
						t.Errorf("%s: netns %d, want %d", ev.Kind, ev.Netns, ns.Inode)
					}
					if ev.Time.Before(before.took) || ev.Time.After(after.took) {
						t.Errorf("%s: time %v outside the scenario [%v, %v]", ev.Kind, ev.Time, before.took, after.took)
					}
				}
				got, wantEvents := observed(t, events, r, family), expected(kernel, name, r)
				if !slices.Equal(got, wantEvents) {
					t.Errorf("events:\n  got  %v\n  want %v", got, wantEvents)
				}
				checkKernelAgreement(t, tr.c.Reasons(), true, events, after.mib.Delta(before.mib), bpfDelta(after.bpf, before.bpf))
			})
		}
	}
}

package expect

import (
	"errors"
	"slices"

	"github.com/cilium/ebpf/btf"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// Kernel is what the running kernel can say about the resets it sends: the
// only kernel-dependent part of the expectations.
type Kernel struct {
	// ResetReasons is true when the kernel names reset reasons: enum
	// sk_rst_reason exists (6.10+) and tcp_send_reset passes one. Without
	// it every reset's reason is "unknown".
	ResetReasons bool
	// ActiveResetReasons is true when the kernel also names the resets it
	// sends on its own initiative (TCP_ABORT_ON_CLOSE, TCP_STATE, ...:
	// 6.12+). Before that, kernels with reset reasons pass NOT_SPECIFIED
	// for them.
	ActiveResetReasons bool
	// UsersProbed is true when kprobes on tcp_sendmsg and tcp_recvmsg
	// record the users of sockets in a map of the tracer's own
	// (collector.Collector.UsersProbed): a socket without storage then
	// still has its owner.
	UsersProbed bool
}

// activeReasons are the reasons of resets the local kernel decides on its
// own (a close, a timer, memory pressure), named only since 6.12. Every
// other reason the table expects (NO_SOCKET, TCP_ABORT_ON_DATA,
// TCP_TIMEWAIT_SOCKET) answers a received segment and is named wherever
// enum sk_rst_reason exists.
var activeReasons = []string{"TCP_ABORT_ON_CLOSE", "TCP_ABORT_ON_LINGER", "TCP_ABORT_ON_MEMORY",
	"TCP_STATE", "TCP_KEEPALIVE_TIMEOUT", "TCP_DISCONNECT_WITH_DATA"}

// activeProbe is the reason whose presence marks a kernel that names active
// resets.
const activeProbe = "TCP_ABORT_ON_CLOSE"

// FromReasons derives the features from the kernel's reset reason names, as
// collector.LoadReasons read them (nil or empty: the kernel names none).
func FromReasons(r *collector.Reasons) Kernel {
	_, active := r.Value(activeProbe)
	return Kernel{ResetReasons: len(r.Values()) > 0, ActiveResetReasons: active}
}

// FromSpec reads the features from a kernel BTF spec.
func FromSpec(spec *btf.Spec) (Kernel, error) {
	r, err := collector.LoadReasons(spec)
	if err != nil && !errors.Is(err, collector.ErrNoResetReasons) {
		return Kernel{}, err
	}
	return FromReasons(r), nil
}

// Reason is how this kernel reports a reset that the newest kernels name
// name: that name where the kernel has it, NOT_SPECIFIED for an active
// reset on a kernel that names only the others (6.10, 6.11), "unknown"
// where the kernel names no reasons (before 6.10). "" stays "".
func (k Kernel) Reason(name string) string {
	switch {
	case name == "":
		return ""
	case !k.ResetReasons:
		return "unknown"
	case !k.ActiveResetReasons && slices.Contains(activeReasons, name):
		return "NOT_SPECIFIED"
	}
	return name
}

// String names the kernel generation the features describe, and says
// whether kprobes record the users of sockets.
func (k Kernel) String() string {
	s := "reset reasons (6.12+)"
	switch {
	case !k.ResetReasons:
		s = "no reset reasons (before 6.10)"
	case !k.ActiveResetReasons:
		s = "reset reasons without active ones (6.10, 6.11)"
	}
	if k.UsersProbed {
		s += ", socket users recorded by kprobes"
	}
	return s
}

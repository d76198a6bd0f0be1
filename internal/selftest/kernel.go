package selftest

import (
	"os"
	"slices"
	"strings"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/expect"
	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
)

// Kernel is what the tracer does on the running kernel, as the collector
// plans it (collector.ProbeKernel) and, once loaded, as it attached.
type Kernel struct {
	// Release is uname -r.
	Release string
	// Problem is why the kernel could not be probed (no BTF, a required
	// hook missing); the rest is then empty.
	Problem string
	// Hooks the tracer uses: "tracepoint NAME", "function NAME".
	Hooks []string
	// Resets says which reset reasons the kernel names and, once loaded,
	// whether kprobes record the users of sockets; it decides the reasons
	// and owners the expected events carry.
	Resets expect.Kernel
	// Lost says what the kernel cannot show and why, one line each.
	Lost []string
	// Compat: the tracer loads its compat build here (before 5.12), whose
	// socket state is a map, not socket storage.
	Compat bool
}

// probeKernel asks the collector what it can do on this kernel, without
// loading anything.
func probeKernel() *Kernel {
	k := &Kernel{Release: Release()}
	s, err := collector.ProbeKernel()
	if err != nil {
		k.Problem = err.Error()
		return k
	}
	// The reset features come from the same reading of the kernel's BTF.
	k.Hooks, k.Lost, k.Resets, k.Compat = s.Hooks, s.Lost, expect.FromReasons(s.Reasons), s.Compat
	return k
}

// loaded records what the collector attached and what it had to give up
// (a function the kernel refused), once Open succeeded.
func (k *Kernel) loaded(c *collector.Collector) {
	k.Hooks = c.Hooks()
	k.Resets.UsersProbed = c.UsersProbed()
	for _, l := range c.Lost() {
		if !slices.Contains(k.Lost, l) {
			k.Lost = append(k.Lost, l)
		}
	}
}

// String is the report's kernel line: the hooks used and the reset reasons.
func (k *Kernel) String() string {
	if k.Problem != "" {
		return k.Problem
	}
	return selfreport.HookList(k.Hooks) + "; " +
		selfreport.ResetSupport(k.Resets.ResetReasons, k.Resets.ActiveResetReasons)
}

// Release is the running kernel's release (uname -r).
func Release() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "(unknown release)"
	}
	return strings.TrimSpace(string(b))
}

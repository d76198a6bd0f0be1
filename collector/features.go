package collector

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// ErrMemlock means the kernel charges BPF memory to RLIMIT_MEMLOCK (before
// 5.11) and the limit could not be raised.
var ErrMemlock = errors.New("this kernel (before 5.11) charges BPF maps to the locked-memory limit, which must be raised: run as root with CAP_SYS_RESOURCE, or raise RLIMIT_MEMLOCK (ulimit -l unlimited, LimitMEMLOCK=infinity)")

// raiseMemlock lifts RLIMIT_MEMLOCK where the kernel charges BPF memory to
// it; on 5.11+ (memory cgroup accounting) it does nothing.
func raiseMemlock() error {
	err := rlimit.RemoveMemlock()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w (%v)", ErrMemlock, err)
	}
	// Not the limit itself: the probe of how the kernel accounts BPF
	// memory failed (e.g. no /proc to read).
	return fmt.Errorf("find whether the kernel charges BPF memory to the locked-memory limit: %w", err)
}

// helpers is what tracing programs may call on the running kernel, as far
// as the choice of BPF object depends on it.
type helpers struct {
	// storage: bpf_sk_storage_get (5.11+).
	storage bool
	// cookie: bpf_get_socket_cookie (5.12+).
	cookie bool
}

// compat reports whether the kernel needs the compat build of the programs.
func (h helpers) compat() bool { return !h.storage || !h.cookie }

// withoutStorage is what the compat build changes, for the lost lines.
const withoutStorage = "kernel lacks socket storage (5.11) or socket cookies (5.12) in tracing programs: " +
	"owners are kept in a map by socket address, and an event's cookie is a hash of its netns, addresses and ports, not the kernel's socket cookie"

// probeHelpers loads a minimal tracing program per helper to see whether the
// kernel lets tracing programs call it. cilium/ebpf's features package has
// no helper probe for tracing programs (they need an attach target).
func probeHelpers(kernel *btf.Spec) (helpers, error) {
	var h helpers
	var err error
	if h.storage, err = tracingHelper(kernel, asm.FnSkStorageGet); err != nil {
		return h, err
	}
	if h.cookie, err = tracingHelper(kernel, asm.FnGetSocketCookie); err != nil {
		return h, err
	}
	return h, nil
}

// tracingHelper reports whether a tp_btf program may call fn. The verifier
// checks that a helper exists for the program type before its arguments:
// "unknown func" (or "invalid func") then means it does not; any other
// refusal (here: arguments not set up) means it does.
func tracingHelper(kernel *btf.Spec, fn asm.BuiltinFunc) (bool, error) {
	spec := &ebpf.ProgramSpec{
		Type:       ebpf.Tracing,
		AttachType: ebpf.AttachTraceRawTp,
		AttachTo:   "inet_sock_set_state",
		Instructions: asm.Instructions{
			fn.Call(),
			asm.LoadImm(asm.R0, 0, asm.DWord),
			asm.Return(),
		},
		License: "GPL",
	}
	prog, err := ebpf.NewProgramWithOptions(spec, ebpf.ProgramOptions{KernelTypes: kernel, LogLevel: ebpf.LogLevelInstruction})
	if err == nil {
		prog.Close()
		return true, nil
	}
	var verr *ebpf.VerifierError
	if !errors.As(err, &verr) {
		return false, fmt.Errorf("probe helper %v for tracing programs: %w", fn, err)
	}
	if errors.Is(err, unix.EINVAL) && helperUnknown(verr.Log) {
		return false, nil
	}
	return true, nil
}

// helperUnknown reports whether a verifier log ends refusing an unknown helper.
func helperUnknown(log []string) bool {
	for _, l := range log[max(len(log)-5, 0):] {
		if strings.Contains(l, "unknown func") || strings.Contains(l, "invalid func") ||
			strings.Contains(l, "cannot use helper") {
			return true
		}
	}
	return false
}

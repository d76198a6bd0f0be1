package collector

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// Capabilities (include/uapi/linux/capability.h).
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// ErrPermission means the process may not load tracing programs.
var ErrPermission = errors.New("need root, or CAP_BPF and CAP_PERFMON (CAP_SYS_ADMIN on kernels before 5.8)")

// checkCapabilities fails unless the effective set allows loading and
// attaching tracing programs.
func checkCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	if has(capSysAdmin) || (has(capBPF) && has(capPerfmon)) {
		return nil
	}
	return ErrPermission
}

// kernelBTFPath is where a BTF-enabled kernel exposes its types.
const kernelBTFPath = "/sys/kernel/btf/vmlinux"

// loadKernelBTF reads the running kernel's BTF, or says clearly that there is none.
func loadKernelBTF() (*btf.Spec, error) {
	if _, err := os.Stat(kernelBTFPath); err != nil {
		return nil, fmt.Errorf("kernel has no BTF (%s missing; build with CONFIG_DEBUG_INFO_BTF=y): %w", kernelBTFPath, err)
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("load kernel BTF: %w", err)
	}
	return spec, nil
}

// hook is one kernel attachment point the programs need.
type hook struct {
	program string // program name in bpf/tcpclose.c
	what    string // "tracepoint" or "function"
	target  string // tracepoint or kernel function name
}

// hooks lists every attachment, in attach order. All are BTF tracepoints:
// trampolines (fentry/fexit) are not available on every kernel that has BTF.
var hooks = []hook{
	{"on_set_state", "tracepoint", "inet_sock_set_state"},
	{"on_send_length", "tracepoint", "sock_send_length"},
	{"on_recv_length", "tracepoint", "sock_recv_length"},
	{"on_receive_reset", "tracepoint", "tcp_receive_reset"},
	{"on_send_reset", "tracepoint", "tcp_send_reset"},
	{"on_destroy", "tracepoint", "tcp_destroy_sock"},
}

// Tracepoints lists the tracepoints the programs attach to.
func Tracepoints() []string {
	var names []string
	for _, h := range hooks {
		if h.what == "tracepoint" {
			names = append(names, h.target)
		}
	}
	return names
}

// checkHooks verifies, from BTF, that every tracepoint and function exists,
// so a missing one is named instead of surfacing as a load error.
func checkHooks(spec *btf.Spec) error {
	for _, h := range hooks {
		var err error
		if h.what == "tracepoint" {
			var td *btf.Typedef
			err = spec.TypeByName("btf_trace_"+h.target, &td)
		} else {
			var fn *btf.Func
			err = spec.TypeByName(h.target, &fn)
		}
		if errors.Is(err, btf.ErrNotFound) {
			return fmt.Errorf("kernel lacks %s %s", h.what, h.target)
		}
		if err != nil {
			return fmt.Errorf("look up %s %s: %w", h.what, h.target, err)
		}
	}
	return nil
}

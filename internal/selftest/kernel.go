package selftest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"

	"github.com/tcpclose-trace/tcpclose-trace/internal/expect"
)

// tracepoints are the kernel's tracepoints a close observer can use; the
// report lists which this kernel has, to explain a tracer that cannot load.
var tracepoints = []string{"inet_sock_set_state", "sock_send_length", "sock_recv_length",
	"tcp_send_reset", "tcp_receive_reset", "tcp_destroy_sock"}

// Kernel is what the running kernel's BTF says about the features the
// detections rest on.
type Kernel struct {
	// BTF is false when the kernel exposes no BTF; the rest is then unknown.
	BTF bool
	// Missing lists the tracepoints of interest the kernel lacks.
	Missing []string
	// Resets says which reset reasons the kernel names; it decides the
	// reasons the expected events carry.
	Resets expect.Kernel
}

// probeKernel reads the running kernel's BTF.
func probeKernel() (*Kernel, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return &Kernel{}, fmt.Errorf("kernel BTF: %w", err)
	}
	return probeSpec(spec)
}

func probeSpec(spec *btf.Spec) (*Kernel, error) {
	k := &Kernel{BTF: true}
	for _, tp := range tracepoints {
		var td *btf.Typedef
		err := spec.TypeByName("btf_trace_"+tp, &td)
		if errors.Is(err, btf.ErrNotFound) {
			k.Missing = append(k.Missing, tp)
		} else if err != nil {
			return k, fmt.Errorf("look up tracepoint %s: %w", tp, err)
		}
	}
	resets, err := expect.FromSpec(spec)
	if err != nil {
		return k, err
	}
	k.Resets = resets
	return k, nil
}

// String is one line for the report.
func (k *Kernel) String() string {
	if !k.BTF {
		return "no BTF"
	}
	parts := []string{"BTF"}
	if len(k.Missing) == 0 {
		parts = append(parts, "has tracepoints "+strings.Join(tracepoints, ", "))
	} else {
		parts = append(parts, "lacks tracepoints "+strings.Join(k.Missing, ", "))
	}
	if k.Resets.ResetReasons {
		parts = append(parts, "reset reasons")
	} else {
		parts = append(parts, "no reset reasons (enum sk_rst_reason: 6.10+)")
	}
	return strings.Join(parts, "; ")
}

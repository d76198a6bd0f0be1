package expect

import (
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// Kernel generations the tracer supports, as their BTF describes them.
var (
	linux61  = Kernel{}
	linux611 = Kernel{ResetReasons: true}
	linux612 = Kernel{ResetReasons: true, ActiveResetReasons: true}
)

// Reset reasons as the kernels name them (enum sk_rst_reason without its
// SK_RST_REASON_ prefix): 6.11 has the passive ones only, 6.12 also the
// active ones, with different numbers.
var (
	reasons611 = map[uint16]string{0: "NOT_SPECIFIED", 1: "NO_SOCKET", 8: "TCP_ABORT_ON_DATA",
		9: "TCP_TIMEWAIT_SOCKET", 10: "INVALID_SYN", 18: "ERROR"}
	reasons612 = map[uint16]string{0: "NOT_SPECIFIED", 1: "NO_SOCKET", 8: "TCP_ABORT_ON_DATA",
		9: "TCP_TIMEWAIT_SOCKET", 10: "INVALID_SYN", 11: "TCP_ABORT_ON_CLOSE", 12: "TCP_ABORT_ON_LINGER",
		13: "TCP_ABORT_ON_MEMORY", 14: "TCP_STATE", 15: "TCP_KEEPALIVE_TIMEOUT", 16: "TCP_DISCONNECT_WITH_DATA", 24: "ERROR"}
)

func TestFromReasons(t *testing.T) {
	tests := []struct {
		name    string
		reasons *collector.Reasons
		want    Kernel
	}{
		{name: "nil", reasons: nil, want: linux61},
		{name: "empty, as LoadReasons returns before 6.10", reasons: collector.NewReasons(nil), want: linux61},
		{name: "passive reasons only", reasons: collector.NewReasons(reasons611), want: linux611},
		{name: "active reasons too", reasons: collector.NewReasons(reasons612), want: linux612},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromReasons(tt.reasons); got != tt.want {
				t.Errorf("FromReasons = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// specWith builds a kernel BTF spec holding enum sk_rst_reason with these
// names (none: no such enum) next to an unrelated type.
func specWith(t *testing.T, names map[uint16]string) *btf.Spec {
	t.Helper()
	types := []btf.Type{&btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}}
	if names != nil {
		enum := &btf.Enum{Name: "sk_rst_reason", Size: 4}
		for v, n := range names {
			enum.Values = append(enum.Values, btf.EnumValue{Name: "SK_RST_REASON_" + n, Value: uint64(v)})
		}
		enum.Values = append(enum.Values, btf.EnumValue{Name: "SK_RST_REASON_MAX", Value: 99})
		types = append(types, enum)
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := b.Spec()
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func TestFromSpec(t *testing.T) {
	tests := []struct {
		name  string
		names map[uint16]string
		want  Kernel
	}{
		{name: "6.1: no enum sk_rst_reason", names: nil, want: linux61},
		{name: "6.11", names: reasons611, want: linux611},
		{name: "6.12", names: reasons612, want: linux612},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromSpec(specWith(t, tt.names))
			if err != nil || got != tt.want {
				t.Errorf("FromSpec = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		name                        string
		linux61, linux611, linux612 string
	}{
		{name: ""},
		{name: "NO_SOCKET", linux61: "unknown", linux611: "NO_SOCKET", linux612: "NO_SOCKET"},
		{name: "TCP_ABORT_ON_DATA", linux61: "unknown", linux611: "TCP_ABORT_ON_DATA", linux612: "TCP_ABORT_ON_DATA"},
		{name: "TCP_TIMEWAIT_SOCKET", linux61: "unknown", linux611: "TCP_TIMEWAIT_SOCKET", linux612: "TCP_TIMEWAIT_SOCKET"},
		{name: "TCP_ABORT_ON_CLOSE", linux61: "unknown", linux611: "NOT_SPECIFIED", linux612: "TCP_ABORT_ON_CLOSE"},
		{name: "TCP_STATE", linux61: "unknown", linux611: "NOT_SPECIFIED", linux612: "TCP_STATE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, want := range map[Kernel]string{linux61: tt.linux61, linux611: tt.linux611, linux612: tt.linux612} {
				if got := k.Reason(tt.name); got != want {
					t.Errorf("%v: Reason(%q) = %q, want %q", k, tt.name, got, want)
				}
			}
		})
	}
}

// TestRunningKernel reads the running kernel: whatever it is, the features
// derived from what collector.ProbeKernel reports must agree with the names
// the collector reads from the same BTF.
func TestRunningKernel(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("skipped: the kernel exposes no BTF: %v", err)
	}
	s, err := collector.ProbeKernel()
	if err != nil {
		t.Skipf("skipped: the tracer does not run on this kernel: %v", err)
	}
	k := FromReasons(s.Reasons)
	r, _ := collector.LoadReasons(spec)
	_, active := r.Value("TCP_ABORT_ON_CLOSE")
	if k.ResetReasons != (len(r.Values()) > 0) || k.ActiveResetReasons != active {
		t.Errorf("FromReasons(ProbeKernel) = %+v, but the kernel names %d reasons (TCP_ABORT_ON_CLOSE: %v)", k, len(r.Values()), active)
	}
	t.Logf("running kernel: %v", k)
}

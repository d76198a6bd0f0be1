package collector

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// fakeKernel builds a BTF spec holding the given tracepoint typedefs and an
// enum sk_rst_reason when reasons is non-nil.
func fakeKernel(t *testing.T, tracepoints []string, reasons []btf.EnumValue) *btf.Spec {
	t.Helper()
	var types []btf.Type
	fn := &btf.FuncProto{Return: (*btf.Void)(nil)}
	for _, tp := range tracepoints {
		types = append(types, &btf.Typedef{Name: "btf_trace_" + tp, Type: &btf.Pointer{Target: fn}})
	}
	if reasons != nil {
		types = append(types, &btf.Enum{Name: "sk_rst_reason", Size: 4, Values: reasons})
	}
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func allTracepoints() []string {
	var tps []string
	for _, h := range hooks {
		tps = append(tps, h.target)
	}
	return tps
}

func TestCheckHooks(t *testing.T) {
	tests := []struct {
		name    string
		tps     []string
		wantErr string
	}{
		{"all present", allTracepoints(), ""},
		{"tcp_send_reset missing", []string{"inet_sock_set_state", "sock_send_length", "sock_recv_length",
			"tcp_receive_reset", "tcp_destroy_sock"}, "kernel lacks tracepoint tcp_send_reset"},
		{"nothing", nil, "kernel lacks tracepoint inet_sock_set_state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHooks(fakeKernel(t, tt.tps, nil))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkHooks() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadReasons(t *testing.T) {
	r, err := LoadReasons(fakeKernel(t, nil, []btf.EnumValue{
		{Name: "SK_RST_REASON_NOT_SPECIFIED", Value: 0},
		{Name: "SK_RST_REASON_NO_SOCKET", Value: 1},
		{Name: "SK_RST_REASON_TCP_ABORT_ON_DATA", Value: 8},
		{Name: "SK_RST_REASON_MAX", Value: 25},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name(1) != "NO_SOCKET" || r.Name(8) != "TCP_ABORT_ON_DATA" || r.Name(25) != "25" {
		t.Errorf("names: %q %q %q", r.Name(1), r.Name(8), r.Name(25))
	}
	if v, ok := r.Value("TCP_ABORT_ON_DATA"); !ok || v != 8 {
		t.Errorf("Value(TCP_ABORT_ON_DATA) = %d, %v", v, ok)
	}
	if _, err := LoadReasons(fakeKernel(t, nil, nil)); !errors.Is(err, ErrNoResetReasons) {
		t.Errorf("kernel without the enum: err = %v, want ErrNoResetReasons", err)
	}
}

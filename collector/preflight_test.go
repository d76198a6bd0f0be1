package collector

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
)

// kernelTypes is what a fake kernel's BTF holds.
type kernelTypes struct {
	tracepoints []string // btf_trace_ typedefs
	resetArgs   int      // parameters of tcp_send_reset's raw tracepoint: 3 before 6.10, 4 after
	functions   []string
	reasons     []btf.EnumValue // enum sk_rst_reason when non-nil
}

// fakeKernel builds a BTF spec holding the given types.
func fakeKernel(t *testing.T, k kernelTypes) *btf.Spec {
	t.Helper()
	var types []btf.Type
	proto := func(n int) *btf.FuncProto {
		fp := &btf.FuncProto{Return: (*btf.Void)(nil)}
		for i := range n {
			fp.Params = append(fp.Params, btf.FuncParam{Name: fmt.Sprintf("a%d", i), Type: &btf.Pointer{Target: (*btf.Void)(nil)}})
		}
		return fp
	}
	for _, tp := range k.tracepoints {
		n := 2
		if tp == "tcp_send_reset" {
			n = k.resetArgs
		}
		types = append(types, &btf.Typedef{Name: "btf_trace_" + tp, Type: &btf.Pointer{Target: proto(n)}})
	}
	for _, fn := range k.functions {
		types = append(types, &btf.Func{Name: fn, Type: proto(2), Linkage: btf.GlobalFunc})
	}
	if k.reasons != nil {
		types = append(types, &btf.Enum{Name: "sk_rst_reason", Size: 4, Values: k.reasons})
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

var (
	allTracepoints = []string{"inet_sock_set_state", "sock_send_length", "sock_recv_length",
		"tcp_receive_reset", "tcp_send_reset", "tcp_destroy_sock"}
	// 6.1: no send/recv length tracepoints, tcp_send_reset without a reason.
	tracepoints61 = []string{"inet_sock_set_state", "tcp_receive_reset", "tcp_send_reset", "tcp_destroy_sock"}
	functions     = []string{"tcp_sendmsg", "tcp_recvmsg", "tcp_v4_send_reset", "tcp_v6_send_reset"}
	base          = []string{"on_receive_reset", "on_send_reset", "on_destroy"}
)

func TestPlanHooks(t *testing.T) {
	use := func(programs ...[]string) []string { return slices.Concat(programs...) }
	tests := []struct {
		name     string
		kernel   kernelTypes
		force    bool // Options.ForceKprobes
		wantUse  []string
		wantLost []string
		wantErr  string
	}{
		{name: "6.18: every tracepoint, resets with reasons",
			kernel:  kernelTypes{tracepoints: allTracepoints, resetArgs: 4, functions: functions},
			wantUse: use([]string{"on_set_state", "on_send_length", "on_recv_length"}, base)},
		{name: "6.6: every tracepoint, resets without reasons",
			kernel:  kernelTypes{tracepoints: allTracepoints, resetArgs: 3, functions: functions},
			wantUse: use([]string{"on_set_state", "on_send_length", "on_recv_length"}, base, []string{"on_v4_send_reset", "on_v6_send_reset"})},
		{name: "6.1",
			kernel: kernelTypes{tracepoints: tracepoints61, resetArgs: 3, functions: functions},
			wantUse: use([]string{"on_set_state", "on_tcp_sendmsg", "on_tcp_recvmsg"}, base,
				[]string{"on_v4_send_reset", "on_v6_send_reset"})},
		{name: "6.1 without the send/recv functions in BTF, IPv6 a module",
			kernel:  kernelTypes{tracepoints: tracepoints61, resetArgs: 3, functions: functions[2:3]},
			wantUse: use([]string{"on_set_state"}, base, []string{"on_v4_send_reset"}),
			wantLost: []string{"kernel lacks function tcp_sendmsg, tcp_recvmsg: " + ownerOfAccepted,
				"kernel lacks function tcp_v6_send_reset: IPv6 resets sent by TIME_WAIT sockets or for segments with no socket go unseen"}},
		// Forced kprobes (the e2e test on a 6.10+ host): the send and
		// receive hooks are planned; resets stay with their tracepoint.
		{name: "6.18, kprobes forced",
			kernel:  kernelTypes{tracepoints: allTracepoints, resetArgs: 4, functions: functions},
			force:   true,
			wantUse: use([]string{"on_set_state", "on_tcp_sendmsg", "on_tcp_recvmsg"}, base)},
		{name: "6.1, kprobes forced",
			kernel: kernelTypes{tracepoints: tracepoints61, resetArgs: 3, functions: functions},
			force:  true,
			wantUse: use([]string{"on_set_state", "on_tcp_sendmsg", "on_tcp_recvmsg"}, base,
				[]string{"on_v4_send_reset", "on_v6_send_reset"})},
		{name: "tcp_send_reset missing",
			kernel:  kernelTypes{tracepoints: []string{"inet_sock_set_state", "tcp_receive_reset", "tcp_destroy_sock"}},
			wantErr: "kernel lacks tracepoint tcp_send_reset"},
		{name: "nothing", wantErr: "kernel lacks tracepoint inet_sock_set_state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			use, lost, err := planHooks(fakeKernel(t, tt.kernel), objectHooks(t, false), tt.force)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("planHooks() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var programs []string
			for _, h := range use {
				programs = append(programs, h.program)
			}
			if !slices.Equal(programs, tt.wantUse) {
				t.Errorf("hooks used:\n  got  %v\n  want %v", programs, tt.wantUse)
			}
			if !slices.Equal(lost, tt.wantLost) {
				t.Errorf("lost:\n  got  %q\n  want %q", lost, tt.wantLost)
			}
		})
	}
}

// TestPlanKernels is the load-time plan on the kernels a DaemonSet meets
// that the matrix cannot boot or that need the compat build: their BTF
// (tracepoints, tcp_send_reset's arguments, functions) and the helpers
// tracing programs may call there. 5.10 (Debian 11, Amazon Linux 2) is
// proven under qemu; 5.14 (RHEL 9) and 5.15 (Ubuntu 22.04) are not packaged
// by Debian: expected, untested.
func TestPlanKernels(t *testing.T) {
	hooks61 := slices.Concat([]string{"on_set_state", "on_tcp_sendmsg", "on_tcp_recvmsg"}, base,
		[]string{"on_v4_send_reset", "on_v6_send_reset"})
	// 5.10 to 6.2 have the same tracepoints: no sock_send_length/sock_recv_length (6.3).
	kernel := kernelTypes{tracepoints: tracepoints61, resetArgs: 3, functions: functions}
	tests := []struct {
		name       string
		helpers    helpers
		wantCompat bool
		wantLost   []string
	}{
		// No socket storage (5.11) nor cookies (5.12) in tracing programs.
		{name: "5.10", helpers: helpers{}, wantCompat: true, wantLost: []string{withoutStorage}},
		// 5.11: storage, no cookie yet.
		{name: "5.11", helpers: helpers{storage: true}, wantCompat: true, wantLost: []string{withoutStorage}},
		{name: "5.14", helpers: helpers{storage: true, cookie: true}},
		{name: "5.15", helpers: helpers{storage: true, cookie: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planFor(fakeKernel(t, kernel), tt.helpers, false)
			if err != nil {
				t.Fatal(err)
			}
			var programs []string
			for _, h := range p.use {
				programs = append(programs, h.program)
			}
			if !slices.Equal(programs, hooks61) {
				t.Errorf("hooks used:\n  got  %v\n  want %v", programs, hooks61)
			}
			if p.compat != tt.wantCompat {
				t.Errorf("compat = %v, want %v", p.compat, tt.wantCompat)
			}
			if !slices.Equal(p.lost, tt.wantLost) {
				t.Errorf("lost:\n  got  %q\n  want %q", p.lost, tt.wantLost)
			}
			// The build chosen has every program of the plan.
			spec, err := loadSpec(p.compat)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range p.use {
				for _, name := range []string{h.program, h.probe} {
					if _, ok := spec.Programs[name]; name != "" && !ok {
						t.Errorf("the build (compat %v) lacks program %s", p.compat, name)
					}
				}
			}
		})
	}
}

func TestHelperUnknown(t *testing.T) {
	tests := []struct {
		log  []string
		want bool
	}{
		{[]string{"0: (85) call bpf_sk_storage_get#107", "unknown func bpf_sk_storage_get#107"}, true},
		{[]string{"0: (85) call bpf_get_socket_cookie#46", "program of this type cannot use helper bpf_get_socket_cookie#46"}, true},
		{[]string{"0: (85) call bpf_sk_storage_get#107", "R1 !read_ok"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := helperUnknown(tt.log); got != tt.want {
			t.Errorf("helperUnknown(%q) = %v, want %v", tt.log, got, tt.want)
		}
	}
}

// TestProbeHelpers: on a kernel with BTF, root may probe the helpers; both
// exist from 5.12 on, so this host's answer must agree with its release.
func TestProbeHelpers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads BPF programs")
	}
	kernel, err := loadKernelBTF()
	if err != nil {
		t.Skipf("needs a kernel with BTF: %v", err)
	}
	if err := raiseMemlock(); err != nil {
		t.Fatal(err)
	}
	h, err := probeHelpers(kernel)
	if err != nil {
		t.Fatal(err)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(uts.Release[:])
	var major, minor int
	if _, err := fmt.Sscanf(release, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("release %q: %v", release, err)
	}
	want := major > 5 || major == 5 && minor >= 12
	if h.compat() == want {
		t.Errorf("kernel %s: helpers %+v, compat %v; want compat %v", release, h, h.compat(), !want)
	}
}

// objectHooks returns the hooks of the default or the compat build.
func objectHooks(t *testing.T, compat bool) []hook {
	t.Helper()
	spec, err := loadSpec(compat)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := hooksOf(spec)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// TestHooksMatchObject: every program of both BPF builds has a policy, and
// both builds attach each program to the same place, which the
// sections name.
func TestHooksMatchObject(t *testing.T) {
	want := []string{
		"tracepoint inet_sock_set_state", "tracepoint sock_send_length", "tracepoint sock_recv_length",
		"function tcp_sendmsg", "function tcp_recvmsg", "tracepoint tcp_receive_reset",
		"tracepoint tcp_send_reset", "tracepoint tcp_destroy_sock", "function tcp_v4_send_reset",
		"function tcp_v6_send_reset",
	}
	for _, compat := range []bool{false, true} {
		var got []string
		for _, h := range objectHooks(t, compat) {
			got = append(got, h.String())
		}
		if !slices.Equal(got, want) {
			t.Errorf("compat %v: hooks\n  got  %q\n  want %q", compat, got, want)
		}
		spec, err := loadSpec(compat)
		if err != nil {
			t.Fatal(err)
		}
		hooksMatch(t, spec)
	}
	if _, err := hooksOf(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{}}); err == nil {
		t.Error("hooksOf an object without the programs: no error")
	}
	// Every function hook has a kprobe on the same function, in both builds.
	for _, compat := range []bool{false, true} {
		for _, h := range objectHooks(t, compat) {
			if (h.what == "function") != (h.probe != "") {
				t.Errorf("compat %v: %s: probe %q", compat, h, h.probe)
			}
		}
	}
	// A probe on another function than its hook's is refused.
	spec, err := loadSpec(false)
	if err != nil {
		t.Fatal(err)
	}
	spec.Programs[bpf.TcpcloseProgKpTcpSendmsg].AttachTo = "tcp_recvmsg"
	if _, err := hooksOf(spec); err == nil || !strings.Contains(err.Error(), "not a kprobe on") {
		t.Errorf("hooksOf with a probe on another function: err = %v", err)
	}
}

func hooksMatch(t *testing.T, spec *ebpf.CollectionSpec) {
	for name := range spec.Programs {
		if name != ownersProgram && !slices.ContainsFunc(policy, func(h hook) bool { return h.program == name || h.probe == name }) {
			t.Errorf("program %s has no hook", name)
		}
	}
	// The start-up iterator is run, not attached.
	if ps, ok := spec.Programs[ownersProgram]; !ok || ps.AttachType != ebpf.AttachTraceIter || ps.AttachTo != "task_file" {
		t.Errorf("program %s: %+v, want an iter/task_file program", ownersProgram, ps)
	}
}

func TestLoadReasons(t *testing.T) {
	r, err := LoadReasons(fakeKernel(t, kernelTypes{reasons: []btf.EnumValue{
		{Name: "SK_RST_REASON_NOT_SPECIFIED", Value: 0},
		{Name: "SK_RST_REASON_NO_SOCKET", Value: 1},
		{Name: "SK_RST_REASON_TCP_ABORT_ON_DATA", Value: 8},
		{Name: "SK_RST_REASON_MAX", Value: 25},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	if r.Name(1) != "NO_SOCKET" || r.Name(8) != "TCP_ABORT_ON_DATA" || r.Name(25) != "25" {
		t.Errorf("names: %q %q %q", r.Name(1), r.Name(8), r.Name(25))
	}
	if v, ok := r.Value("TCP_ABORT_ON_DATA"); !ok || v != 8 {
		t.Errorf("Value(TCP_ABORT_ON_DATA) = %d, %v", v, ok)
	}
	if _, err := LoadReasons(fakeKernel(t, kernelTypes{})); !errors.Is(err, ErrNoResetReasons) {
		t.Errorf("kernel without the enum: err = %v, want ErrNoResetReasons", err)
	}
}

package collector

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
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

// hook is one kernel attachment point the programs use: a program of
// bpf/tcpclose.c, what its section attaches it to, and the policy for it.
type hook struct {
	program string // program name in bpf/tcpclose.c (bpf.TcpcloseProg*)
	// what: "tracepoint" or "function", the program's section (tp_btf/,
	// fentry/); "kprobe" once a function hook's probe stands in for it.
	what   string
	target string // tracepoint or kernel function name: the rest of the section
	// probe is the kprobe program (section kprobe/ on the same function)
	// attached instead where the kernel refuses the function program's
	// trampoline; empty for none.
	probe string
	// users: the probe records the users of sockets (probed_users), which
	// the tracepoint programs read once users_probed is set.
	users bool
	// lost says what goes undetected without this hook; empty for a hook
	// the tracer cannot run without.
	lost string
	// needed says whether this kernel needs the hook at all; nil for every kernel.
	needed func(*kernelFeatures) bool
}

// kernelFeatures is what the running kernel's BTF says about the hooks.
type kernelFeatures struct {
	// allResets: tcp_send_reset fires for every RST and passes its reason
	// (6.10+). Before, it is silent for TIME_WAIT, request and socket-less
	// resets, which are then taken at tcp_v4/v6_send_reset.
	allResets bool
	// lengths: the sock_send_length and sock_recv_length tracepoints exist
	// (6.3+); before, tcp_sendmsg and tcp_recvmsg are hooked instead.
	lengths bool
}

// ownerOfAccepted is what is lost without a hook on sends and receives.
const ownerOfAccepted = "an accepted socket keeps its listener's process as owner until it is closed"

func lacksAllResets(k *kernelFeatures) bool { return !k.allResets }
func hasLengths(k *kernelFeatures) bool     { return k.lengths }
func lacksLengths(k *kernelFeatures) bool   { return !k.lengths }

// policy lists every program that is attached, in attach order, with what
// is lost without it and which kernels need it; where each attaches comes
// from the object (hooksOf). The tracepoints are BTF tracepoints; the
// functions (fentry) stand in for tracepoints that older kernels lack or
// that are silent there, and where the kernel refuses their trampolines
// (arm64 without ftrace direct calls), a kprobe on the same function
// stands in for each (probe): never where fentry works.
var policy = []hook{
	{program: bpf.TcpcloseProgOnSetState},
	{program: bpf.TcpcloseProgOnSendLength, needed: hasLengths},
	{program: bpf.TcpcloseProgOnRecvLength, needed: hasLengths},
	{program: bpf.TcpcloseProgOnTcpSendmsg, probe: bpf.TcpcloseProgKpTcpSendmsg, users: true,
		needed: lacksLengths, lost: ownerOfAccepted},
	{program: bpf.TcpcloseProgOnTcpRecvmsg, probe: bpf.TcpcloseProgKpTcpRecvmsg, users: true,
		needed: lacksLengths, lost: ownerOfAccepted},
	{program: bpf.TcpcloseProgOnReceiveReset},
	{program: bpf.TcpcloseProgOnSendReset},
	{program: bpf.TcpcloseProgOnDestroy},
	{program: bpf.TcpcloseProgOnV4SendReset, probe: bpf.TcpcloseProgKpV4SendReset, needed: lacksAllResets,
		lost: "IPv4 resets sent by TIME_WAIT sockets or for segments with no socket go unseen"},
	{program: bpf.TcpcloseProgOnV6SendReset, probe: bpf.TcpcloseProgKpV6SendReset, needed: lacksAllResets,
		lost: "IPv6 resets sent by TIME_WAIT sockets or for segments with no socket go unseen"},
}

// attachKinds names the program types the hooks use, by attach type.
var attachKinds = map[ebpf.AttachType]string{
	ebpf.AttachTraceRawTp:  "tracepoint", // SEC("tp_btf/NAME")
	ebpf.AttachTraceFEntry: "function",   // SEC("fentry/NAME")
}

// hooksOf returns the policy's hooks with the kind and target of each
// program in spec, as its section names them.
func hooksOf(spec *ebpf.CollectionSpec) ([]hook, error) {
	hs := slices.Clone(policy)
	for i := range hs {
		ps, ok := spec.Programs[hs[i].program]
		if !ok {
			return nil, fmt.Errorf("BPF object has no program %s", hs[i].program)
		}
		what, ok := attachKinds[ps.AttachType]
		if !ok || ps.AttachTo == "" {
			return nil, fmt.Errorf("BPF program %s: section %q is not a tp_btf or fentry hook", ps.Name, ps.SectionName)
		}
		hs[i].what, hs[i].target = what, ps.AttachTo
		if hs[i].probe == "" {
			continue
		}
		pp, ok := spec.Programs[hs[i].probe]
		if !ok {
			return nil, fmt.Errorf("BPF object has no program %s", hs[i].probe)
		}
		if pp.Type != ebpf.Kprobe || pp.AttachTo != ps.AttachTo || what != "function" {
			return nil, fmt.Errorf("BPF program %s: section %q is not a kprobe on %s's function %s", pp.Name, pp.SectionName, ps.Name, ps.AttachTo)
		}
	}
	return hs, nil
}

// Tracepoints lists the tracepoints the programs may attach to.
func Tracepoints() ([]string, error) {
	spec, err := bpf.LoadTcpclose()
	if err != nil {
		return nil, err
	}
	hs, err := hooksOf(spec)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, h := range hs {
		if h.what == "tracepoint" {
			names = append(names, h.target)
		}
	}
	return names, nil
}

// probeFeatures reads the features the hooks depend on from kernel BTF.
// forceKprobes (tests) takes the send and receive length tracepoints as
// missing, so that the hooks on tcp_sendmsg and tcp_recvmsg are planned.
func probeFeatures(spec *btf.Spec, forceKprobes bool) (*kernelFeatures, error) {
	k := &kernelFeatures{lengths: true}
	for _, tp := range []string{"sock_send_length", "sock_recv_length"} {
		var td *btf.Typedef
		if err := spec.TypeByName("btf_trace_"+tp, &td); errors.Is(err, btf.ErrNotFound) {
			k.lengths = false
		} else if err != nil {
			return nil, fmt.Errorf("look up tracepoint %s: %w", tp, err)
		}
	}
	if forceKprobes {
		k.lengths = false
	}
	var td *btf.Typedef
	err := spec.TypeByName("btf_trace_tcp_send_reset", &td)
	if errors.Is(err, btf.ErrNotFound) {
		return k, nil // planHooks names the missing tracepoint
	}
	if err != nil {
		return nil, fmt.Errorf("look up tracepoint tcp_send_reset: %w", err)
	}
	// btf_trace_tcp_send_reset is a pointer to (void *ctx, sk, skb[, reason]).
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return nil, fmt.Errorf("tracepoint tcp_send_reset: unexpected BTF type %v", td.Type)
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return nil, fmt.Errorf("tracepoint tcp_send_reset: unexpected BTF type %v", ptr.Target)
	}
	k.allResets = len(proto.Params) >= 4
	return k, nil
}

// planHooks checks, from BTF, every hook this kernel needs: it returns the
// hooks to attach and, for each optional one the kernel lacks, what is lost.
// A missing required hook is an error that names it.
func planHooks(spec *btf.Spec, hooks []hook, forceKprobes bool) (use []hook, lost []string, err error) {
	k, err := probeFeatures(spec, forceKprobes)
	if err != nil {
		return nil, nil, err
	}
	var missing []hook
	for _, h := range hooks {
		if h.needed != nil && !h.needed(k) {
			continue
		}
		err := h.lookup(spec)
		switch {
		case errors.Is(err, btf.ErrNotFound) && h.lost != "":
			missing = append(missing, h)
		case errors.Is(err, btf.ErrNotFound):
			return nil, nil, fmt.Errorf("kernel lacks %s %s", h.what, h.target)
		case err != nil:
			return nil, nil, fmt.Errorf("look up %s %s: %w", h.what, h.target, err)
		default:
			use = append(use, h)
		}
	}
	return use, whatIsLost(missing), nil
}

// String names the hook as reports show it: "tracepoint inet_sock_set_state".
func (h hook) String() string { return h.what + " " + h.target }

// lookup finds the hook's tracepoint or function in kernel BTF.
func (h hook) lookup(spec *btf.Spec) error {
	if h.what == "tracepoint" {
		var td *btf.Typedef
		return spec.TypeByName("btf_trace_"+h.target, &td)
	}
	var fn *btf.Func
	return spec.TypeByName(h.target, &fn)
}

// whatIsLost says, once per loss, which missing hooks cause it.
func whatIsLost(missing []hook) []string {
	var lines []string
	for i, h := range missing {
		if slices.ContainsFunc(missing[:i], func(o hook) bool { return o.lost == h.lost }) {
			continue
		}
		var targets []string
		for _, o := range missing[i:] {
			if o.lost == h.lost {
				targets = append(targets, o.target)
			}
		}
		lines = append(lines, fmt.Sprintf("kernel lacks %s %s: %s", h.what, strings.Join(targets, ", "), h.lost))
	}
	return lines
}

// Support is what the tracer can do on a kernel.
type Support struct {
	Hooks []string // the hooks it attaches: "tracepoint inet_sock_set_state", ...
	// Lost says what the kernel cannot show and why, one line each.
	Lost []string
	// Compat: the kernel gets the compat build of the programs (no socket
	// storage or cookies in tracing programs, before 5.12).
	Compat bool
	// Reasons are the kernel's reset reason names (enum sk_rst_reason,
	// 6.10+); empty before.
	Reasons *Reasons
}

// ProbeKernel reads the running kernel's BTF and says what the tracer can do
// on it: only two probe programs are loaded (and closed), to see which helpers
// tracing programs may call. Open may still find a function hook whose
// trampoline the kernel refuses: Collector.Hooks then names the kprobe that
// stands in for it, or Collector.Lost says what is lost.
func ProbeKernel() (*Support, error) {
	p, err := planKernel(false)
	if err != nil {
		return nil, err
	}
	s := &Support{Lost: p.lost, Compat: p.compat, Reasons: p.reasons}
	for _, h := range p.use {
		s.Hooks = append(s.Hooks, h.String())
	}
	return s, nil
}

// kernelPlan is what the tracer will do on the running kernel.
type kernelPlan struct {
	btf     *btf.Spec
	compat  bool                 // load the compat build (no socket storage or cookies in tracing programs)
	object  *ebpf.CollectionSpec // the build to load
	use     []hook               // the hooks to attach
	lost    []string             // what the kernel cannot show, and why
	reasons *Reasons             // empty before 6.10
}

// planKernel reads the running kernel's BTF, raises the locked-memory limit
// where the kernel needs it, probes the helpers and plans the hooks
// (forceKprobes: see Options.ForceKprobes).
func planKernel(forceKprobes bool) (*kernelPlan, error) {
	spec, err := loadKernelBTF()
	if err != nil {
		return nil, err
	}
	if err := raiseMemlock(); err != nil {
		return nil, err
	}
	h, err := probeHelpers(spec)
	if err != nil {
		return nil, err
	}
	if forceCompat {
		h = helpers{}
	}
	p, err := planFor(spec, h, forceKprobes)
	if err != nil {
		return nil, err
	}
	p.reasons, err = LoadReasons(spec)
	if err != nil && !errors.Is(err, ErrNoResetReasons) {
		return nil, err
	}
	return p, nil
}

// planFor plans the object and the hooks for a kernel's BTF and helpers.
func planFor(spec *btf.Spec, h helpers, forceKprobes bool) (*kernelPlan, error) {
	p := &kernelPlan{btf: spec, compat: h.compat()}
	var err error
	if p.object, err = loadSpec(p.compat); err != nil {
		return nil, fmt.Errorf("load BPF spec: %w", err)
	}
	hooks, err := hooksOf(p.object)
	if err != nil {
		return nil, err
	}
	if p.use, p.lost, err = planHooks(spec, hooks, forceKprobes); err != nil {
		return nil, err
	}
	if p.compat {
		p.lost = append(p.lost, withoutStorage)
	}
	return p, nil
}

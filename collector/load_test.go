package collector

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/bpfprogs"
)

// TestLoadFunctionHooks loads every hook, the fentry ones too, whatever this
// kernel needs: each function hook either attaches (its fentry program, or
// its kprobe where the kernel refuses the trampoline), or is reported as
// lost while the tracer still runs; nothing is left behind by Close. With
// kprobes forced, the kprobe programs load and attach here too.
func TestLoadFunctionHooks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: loads and attaches BPF programs")
	}
	kernel, err := loadKernelBTF()
	if err != nil {
		t.Skipf("needs a kernel with BTF: %v", err)
	}
	// Every hook whose target this kernel has, needed here or not.
	var use []hook
	for _, h := range objectHooks(t, false) {
		if h.lookup(kernel) == nil {
			use = append(use, h)
		}
	}
	for _, compat := range []bool{false, true} {
		for _, kprobes := range []bool{false, true} {
			name := map[bool]string{false: "default", true: "compat"}[compat] + map[bool]string{false: "", true: "/kprobes"}[kprobes]
			t.Run(name, func(t *testing.T) {
				testLoadHooks(t, kernel, use, compat, kprobes)
			})
		}
	}
}

// testLoadHooks loads and attaches the hooks of use from the default or the
// compat build (every kernel that runs the default one runs the compat one
// too), with kprobes in place of fentry if asked, then closes them.
func testLoadHooks(t *testing.T, kernel *btf.Spec, use []hook, compat, kprobes bool) {
	spec, err := loadSpec(compat)
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{opts: Options{RingBytes: 4096, ForceKprobes: kprobes}}
	defer c.Close()
	if err := c.load(spec, kernel, use); err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := c.attach(use); err != nil {
		t.Fatalf("attach: %v", err)
	}
	ids, err := c.ProgramIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range use {
		attached := slices.ContainsFunc(c.hooks, func(a hook) bool { return a.program == h.program || a.program == h.probe })
		lost := slices.ContainsFunc(c.lost, func(l string) bool { return strings.Contains(l, h.target) })
		switch {
		case h.what == "tracepoint" && !attached:
			t.Errorf("tracepoint %s not attached", h.target)
		case h.what == "function" && attached == lost:
			t.Errorf("function %s: attached %v, reported lost %v (want exactly one): %q", h.target, attached, lost, c.lost)
		case h.what == "function" && kprobes && attached && !slices.Contains(c.Hooks(), "kprobe "+h.target):
			t.Errorf("function %s: kprobes forced, hooks %q", h.target, c.Hooks())
		}
	}
	for _, l := range c.lost {
		t.Logf("lost: %s", l)
	}
	if c.Attached() != len(c.hooks) || len(ids) < c.Attached() {
		t.Errorf("%d attached, %d hooks, %d programs", c.Attached(), len(c.hooks), len(ids))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if c.Attached() != 0 {
		t.Errorf("%d attached after Close", c.Attached())
	}
	left, err := bpfprogs.WaitGone(ids, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("programs left loaded after Close: %v", left)
	}
}

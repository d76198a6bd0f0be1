package vmtest

import (
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

// Arch is a guest architecture: how its Debian kernel is named, which
// emulator boots it and how the guest reports.
type Arch struct {
	// Name is the Debian architecture, which is also the GOARCH of the
	// guest's programs: "amd64", "arm64".
	Name string
	// QEMU is the emulator (Debian package qemu-system-x86 or
	// qemu-system-arm).
	QEMU string
	// Machine are qemu's machine, CPU and accelerator arguments.
	Machine []string
	// Console is the kernel's console device: the first serial port, which
	// qemu writes to the console log.
	Console string
	// Output is the guest's device for the suite and the self-test; qemu
	// sends it to the runner's stdin/stdout pipe. OutputArgs are the qemu
	// arguments that create it.
	Output     string
	OutputArgs []string
	// Modules are the drivers of Output, in load order: the guest loads
	// those the kernel builds as modules before GuestModules.
	Modules []Module
}

// Module is a driver that a kernel builds in or as a module.
type Module struct {
	Path   string // under lib/modules/RELEASE, without .ko
	Config string // its kernel configuration symbol
}

// Arches are the guest architectures the runner boots.
var Arches = map[string]*Arch{
	"amd64": {
		Name: "amd64",
		QEMU: "qemu-system-x86_64",
		// One host thread for all vCPUs: with multi-threaded TCG, 6.12
		// oopses at boot (int3 in run_timer_softirq while another vCPU
		// patches kernel text).
		Machine: []string{"-accel", "tcg,thread=single", "-cpu", "max"},
		Console: "ttyS0",
		// The second 16550 UART.
		Output:     "/dev/ttyS1",
		OutputArgs: []string{"-serial", "stdio"},
	},
	"arm64": {
		Name: "arm64",
		QEMU: "qemu-system-aarch64",
		// The virt board has one PL011 UART (the console). Multi-threaded
		// TCG, one host thread per vCPU, as qemu chooses for arm64 guests.
		Machine: []string{"-machine", "virt", "-accel", "tcg", "-cpu", "max"},
		Console: "ttyAMA0",
		// A virtio console on the virt board's virtio-mmio transport: the
		// board has no second UART.
		Output: "/dev/hvc0",
		OutputArgs: []string{"-device", "virtio-serial-device", "-chardev", "stdio,id=out",
			"-device", "virtconsole,chardev=out"},
		// Modules in Debian's 6.1, built in from 6.12 (but virtio_mmio).
		Modules: []Module{{"kernel/drivers/virtio/virtio_ring", "CONFIG_VIRTIO"},
			{"kernel/drivers/virtio/virtio", "CONFIG_VIRTIO"},
			{"kernel/drivers/virtio/virtio_mmio", "CONFIG_VIRTIO_MMIO"},
			{"kernel/drivers/char/virtio_console", "CONFIG_VIRTIO_CONSOLE"}},
	},
}

// HostArch is the architecture of this host's Debian packages, the default
// of a Target.
var HostArch = runtime.GOARCH

// Target is one kernel to boot: a Debian kernel series on an architecture.
type Target struct {
	Series string // e.g. "6.1"
	Arch   *Arch
}

// seriesRE is a kernel series: MAJOR.MINOR.
var seriesRE = regexp.MustCompile(`^[0-9]+\.[0-9]+$`)

// ParseTarget parses SERIES or SERIES-ARCH, e.g. "6.1" (the host's
// architecture) or "6.1-arm64".
func ParseTarget(s string) (Target, error) {
	series, arch, foreign := strings.Cut(s, "-")
	if !foreign {
		arch = HostArch
	}
	if !seriesRE.MatchString(series) {
		return Target{}, fmt.Errorf("kernel %q: want MAJOR.MINOR or MAJOR.MINOR-ARCH, e.g. 6.1 or 6.1-arm64", s)
	}
	a, ok := Arches[arch]
	if !ok {
		names := make([]string, 0, len(Arches))
		for n := range Arches {
			names = append(names, n)
		}
		slices.Sort(names)
		return Target{}, fmt.Errorf("kernel %q: no architecture %q (have %s)", s, arch, strings.Join(names, ", "))
	}
	return Target{Series: series, Arch: a}, nil
}

// Name names the target's results: the series, followed by "-ARCH" when
// that is not the host's architecture.
func (t Target) Name() string {
	if t.Foreign() {
		return t.Series + "-" + t.Arch.Name
	}
	return t.Series
}

// Foreign reports whether the target's architecture is not the host's: its
// guest programs come from the Debian packages of that architecture.
func (t Target) Foreign() bool { return t.Arch.Name != HostArch }

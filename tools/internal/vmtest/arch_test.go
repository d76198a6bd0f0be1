package vmtest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in, series, arch, name, err string
		foreign                     bool
	}{
		{in: "6.1", series: "6.1", arch: HostArch, name: "6.1"},
		{in: "5.10", series: "5.10", arch: HostArch, name: "5.10"},
		{in: "6.1-arm64", series: "6.1", arch: "arm64", name: "6.1-arm64", foreign: HostArch != "arm64"},
		{in: "6.12-amd64", series: "6.12", arch: "amd64", name: "6.12" + map[bool]string{true: "", false: "-amd64"}[HostArch == "amd64"],
			foreign: HostArch != "amd64"},
		{in: "6.1-riscv64", err: `no architecture "riscv64" (have amd64, arm64)`},
		{in: "6", err: "want MAJOR.MINOR"},
		{in: "arm64-6.1", err: "want MAJOR.MINOR"},
		{in: "6.1-", err: `no architecture ""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Series != tt.series || got.Arch.Name != tt.arch || got.Name() != tt.name || got.Foreign() != tt.foreign {
				t.Errorf("got %s %s name %s foreign %v, want %s %s %s %v", got.Series, got.Arch.Name, got.Name(), got.Foreign(),
					tt.series, tt.arch, tt.name, tt.foreign)
			}
		})
	}
}

// searchArm64 is apt-cache search output of Debian 12's arm64 lists.
const searchArm64 = `linux-image-6.1.0-50-cloud-arm64-unsigned - Linux 6.1 for arm64 cloud
linux-image-6.1.0-9-cloud-arm64-unsigned - Linux 6.1 for arm64 cloud
linux-image-6.1.0-50-arm64-unsigned - Linux 6.1 for 64-bit ARMv8 machines
linux-image-6.1.0-50-cloud-arm64-dbg - Debug symbols for linux-image-6.1.0-50-cloud-arm64
linux-image-6.12.118+deb12-cloud-arm64-unsigned - Linux 6.12 for arm64 cloud
`

func TestNewestPackageArch(t *testing.T) {
	tests := []struct {
		out, series, arch, pkg, release, err string
	}{
		{out: searchArm64, series: "6.1", arch: "arm64", pkg: "linux-image-6.1.0-50-cloud-arm64-unsigned", release: "6.1.0-50-cloud-arm64"},
		{out: searchArm64, series: "6.12", arch: "arm64", pkg: "linux-image-6.12.118+deb12-cloud-arm64-unsigned", release: "6.12.118+deb12-cloud-arm64"},
		// The other architecture's packages never match.
		{out: searchArm64, series: "6.1", arch: "amd64", err: "no package linux-image-6.1.*-cloud-amd64-unsigned"},
		{out: search, series: "6.1", arch: "arm64", err: "no package linux-image-6.1.*-cloud-arm64-unsigned"},
	}
	for _, tt := range tests {
		t.Run(tt.series+"-"+tt.arch, func(t *testing.T) {
			pkg, rel, err := newestPackage([]byte(tt.out), tt.series, tt.arch)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || pkg != tt.pkg || rel != tt.release {
				t.Fatalf("got %q %q %v, want %q %q", pkg, rel, err, tt.pkg, tt.release)
			}
		})
	}
}

func TestMachineArgs(t *testing.T) {
	tests := []struct {
		arch string
		want string
	}{
		{"amd64", "qemu-system-x86_64 -accel tcg,thread=single -cpu max -smp 2 -m 2G -nographic -monitor none -no-reboot " +
			"-kernel K -initrd I -append console=ttyS0 panic=-1 loglevel=4 rdinit=/init -serial file:C -serial stdio"},
		{"arm64", "qemu-system-aarch64 -machine virt -accel tcg -cpu max -smp 2 -m 2G -nographic -monitor none -no-reboot " +
			"-kernel K -initrd I -append console=ttyAMA0 panic=-1 loglevel=4 rdinit=/init -serial file:C " +
			"-device virtio-serial-device -chardev stdio,id=out -device virtconsole,chardev=out"},
	}
	for _, tt := range tests {
		t.Run(tt.arch, func(t *testing.T) {
			a := Arches[tt.arch]
			m := &Machine{Arch: a, Kernel: "K", Initramfs: "I", Memory: "2G", CPUs: 2, Console: "C"}
			got := a.QEMU + " " + strings.Join(m.args(), " ")
			if got != tt.want {
				t.Errorf("args\n%s\nwant\n%s", got, tt.want)
			}
			// Building the arguments twice must not change the table.
			if again := a.QEMU + " " + strings.Join(m.args(), " "); again != tt.want {
				t.Errorf("second call: %s", again)
			}
		})
	}
	if Arches["amd64"].Output != "/dev/ttyS1" || Arches["arm64"].Output != "/dev/hvc0" {
		t.Errorf("output devices %s, %s", Arches["amd64"].Output, Arches["arm64"].Output)
	}
}

func TestKernelModules(t *testing.T) {
	config61 := "CONFIG_VIRTIO=m\nCONFIG_VIRTIO_MMIO=m\n# CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set\nCONFIG_VIRTIO_CONSOLE=m\n"
	config612 := "CONFIG_VIRTIO=y\nCONFIG_VIRTIO_MMIO=m\nCONFIG_VIRTIO_CONSOLE=y\n"
	tests := []struct {
		name, arch, config string
		want               []string
		err                string
	}{
		{name: "amd64", arch: "amd64", config: "", want: GuestModules},
		{name: "arm64 6.1: all modules", arch: "arm64", config: config61, want: []string{"kernel/drivers/virtio/virtio_ring",
			"kernel/drivers/virtio/virtio", "kernel/drivers/virtio/virtio_mmio", "kernel/drivers/char/virtio_console",
			"kernel/net/ipv4/inet_diag", "kernel/net/ipv4/tcp_diag"}},
		{name: "arm64 6.12: mostly built in", arch: "arm64", config: config612, want: []string{"kernel/drivers/virtio/virtio_mmio",
			"kernel/net/ipv4/inet_diag", "kernel/net/ipv4/tcp_diag"}},
		{name: "arm64 without virtio console", arch: "arm64", config: "CONFIG_VIRTIO=y\nCONFIG_VIRTIO_MMIO=y\n",
			err: "lacks virtio_console (CONFIG_VIRTIO_CONSOLE=)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kernelModules(Arches[tt.arch], []byte(tt.config))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("got %v %v, want %v", got, err, tt.want)
			}
		})
	}
	// The table itself is never appended to.
	if len(Arches["amd64"].Modules) != 0 || len(GuestModules) != 2 {
		t.Errorf("tables changed: %v %v", Arches["amd64"].Modules, GuestModules)
	}
}

// indextargets is `apt-get indextargets --format '$(REPO_URI) $(RELEASE)'`
// of Debian 12's lists, labels Debian then Debian-Security.
const indextargets = `http://deb.example/debian/ bookworm
http://deb.example/debian/ bookworm-updates
http://deb.example/debian-security/ bookworm-security
`

func TestSourcesList(t *testing.T) {
	key := "signed-by=" + debianKeyring + "]"
	tests := []struct {
		name, targets, suite, arch string
		want, release, err         string
	}{
		{name: "other release", targets: indextargets, suite: "bullseye", arch: "amd64", release: "bullseye",
			want: "deb [arch=amd64 " + key + " http://deb.example/debian/ bullseye main\n"},
		{name: "host release, arm64", targets: indextargets, arch: "arm64", release: "bookworm",
			want: "deb [arch=arm64 " + key + " http://deb.example/debian/ bookworm main\n" +
				"deb [arch=arm64 " + key + " http://deb.example/debian/ bookworm-updates main\n" +
				"deb [arch=arm64 " + key + " http://deb.example/debian-security/ bookworm-security main\n"},
		{name: "no lists", targets: "\n", suite: "bullseye", arch: "amd64", err: "in Debian's bullseye: the host's apt knows no Debian archive"},
		{name: "no release", targets: "http://deb.example/debian/ bookworm-updates\n", arch: "arm64", err: "knows no Debian release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rel, err := sourcesList([]byte(tt.targets), tt.suite, tt.arch)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want || rel != tt.release {
				t.Errorf("got %q %q %v, want %q %q", got, rel, err, tt.want, tt.release)
			}
		})
	}
}

func TestPrivateApt(t *testing.T) {
	amd := strings.Join(privateApt("/c/apt/bullseye", "amd64", false), " ")
	arm := strings.Join(privateApt("/c/apt/bookworm-arm64", "arm64", true), " ")
	if strings.Contains(amd, "APT::Architecture") {
		t.Errorf("host architecture changed: %s", amd)
	}
	for _, want := range []string{"Dir::Etc::SourceList=/c/apt/bookworm-arm64/sources.list", "APT::Architecture=arm64", "APT::Architectures=arm64"} {
		if !strings.Contains(arm, want) {
			t.Errorf("arm64 options lack %s: %s", want, arm)
		}
	}
}

// depends is `apt-cache depends --no-recommends ...` output for two packages.
const depends = `iproute2
  Depends: debconf
 |Depends: libbpf1
  Depends: <debconf-2.0>
    cdebconf
    debconf
  PreDepends: libc6
  Depends: perl:any
procps
  Depends: libc6
  Depends: libproc2-0
`

func TestParseDepends(t *testing.T) {
	want := []string{"debconf", "libbpf1", "libc6", "perl", "libproc2-0"}
	if got := parseDepends([]byte(depends)); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLibraryPackages(t *testing.T) {
	show := "Package: debconf\nSection: admin\n\nPackage: libbpf1\nVersion: 1:1.1.0-1\nSection: libs\n\n" +
		"Package: libfoo\nSection: non-free/libs\n\nPackage: perl\nSection: perl\n\nPackage: libc6\nSection: libs\n"
	want := []string{"libbpf1", "libfoo", "libc6"}
	if got := libraryPackages([]byte(show)); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestUserlandPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"bin/ip", "usr/bin/ip"},
		{"sbin", "usr/sbin"},
		{"lib/aarch64-linux-gnu/libc.so.6", "usr/lib/aarch64-linux-gnu/libc.so.6"},
		{"usr/bin/nstat", "usr/bin/nstat"},
		{"etc/iproute2/rt_tables", "etc/iproute2/rt_tables"},
		{"usr/share/doc/iproute2", ""},
		{"usr/share", ""},
		{"usr/sharedlib", "usr/sharedlib"},
		{"var/lib/dpkg", ""},
		{".packages", ""},
	}
	for _, tt := range tests {
		if got := userlandPath(tt.in); got != tt.want {
			t.Errorf("userlandPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestMergeUserland merges a small unpacked tree: top-level directories go
// under usr, links stay links, documentation is left out and files already
// in the root are kept.
func TestMergeUserland(t *testing.T) {
	src, root := t.TempDir(), t.TempDir()
	write := func(dir, name, content string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(src, "bin/ip", "ip")
	write(src, "bin/dmesg", "util-linux dmesg")
	write(src, "lib/aarch64-linux-gnu/libc.so.6", "libc")
	write(src, "usr/share/doc/x", "doc")
	if err := os.Symlink("aarch64-linux-gnu/libc.so.6", filepath.Join(src, "lib/ld.so")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(root, "usr/bin/dmesg", "busybox")
	if err := mergeUserland(src, root); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"usr/bin/ip": "ip", "usr/bin/dmesg": "busybox",
		"usr/lib/aarch64-linux-gnu/libc.so.6": "libc", "usr/lib/ld.so": "libc"} {
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", name, b, err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "usr/lib/ld.so")); err != nil || target != "aarch64-linux-gnu/libc.so.6" {
		t.Errorf("link: %q %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/share")); !os.IsNotExist(err) {
		t.Errorf("documentation merged: %v", err)
	}
}

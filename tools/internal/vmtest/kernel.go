// Package vmtest boots Debian's cloud kernels under qemu with a busybox
// initramfs that holds the statically built end-to-end suite, and collects
// what the suite reports.
package vmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Kernel is one Debian kernel image, extracted.
type Kernel struct {
	Series  string // as asked, e.g. "6.1"
	Arch    *Arch
	Package string // e.g. linux-image-6.1.0-56-cloud-amd64-unsigned
	Release string // uname -r, e.g. 6.1.0-56-cloud-amd64
	Vmlinuz string // path of the extracted kernel image
	// Modules are the extracted, uncompressed modules of the
	// architecture's Modules and GuestModules, in load order.
	Modules []string
}

// GuestModules are the modules the suite needs that Debian's cloud kernels
// build as modules, in load order: sock_diag for TCP (inet_diag, tcp_diag).
var GuestModules = []string{"kernel/net/ipv4/inet_diag", "kernel/net/ipv4/tcp_diag"}

// packagePattern matches the unsigned cloud images of a series for an
// architecture; the series is followed by a dot, so "6.1" does not match
// 6.12.
func packagePattern(series, arch string) (*regexp.Regexp, error) {
	if !seriesRE.MatchString(series) {
		return nil, fmt.Errorf("kernel series %q: want MAJOR.MINOR, e.g. 6.1", series)
	}
	return regexp.MustCompile(`^linux-image-(` + regexp.QuoteMeta(series) + `\.[0-9][^ ]*-cloud-` + regexp.QuoteMeta(arch) + `)-unsigned$`), nil
}

// newestPackage picks, from apt-cache search output, the newest package of
// the series for the architecture by natural order of the name.
func newestPackage(searchOutput []byte, series, arch string) (pkg, release string, err error) {
	re, err := packagePattern(series, arch)
	if err != nil {
		return "", "", err
	}
	var names []string
	for _, line := range strings.Split(string(searchOutput), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if re.MatchString(name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "", "", fmt.Errorf("no package linux-image-%s.*-cloud-%s-unsigned in the apt lists (apt-get update?)", series, arch)
	}
	slices.SortFunc(names, naturalCompare)
	pkg = names[len(names)-1]
	return pkg, re.FindStringSubmatch(pkg)[1], nil
}

// naturalCompare orders strings with their digit runs compared as numbers:
// 6.1.0-9 < 6.1.0-10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, ra := splitDigits(a)
		db, rb := splitDigits(b)
		if da != "" && db != "" {
			na, _ := strconv.ParseUint(da, 10, 64)
			nb, _ := strconv.ParseUint(db, 10, 64)
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			if a[0] < b[0] {
				return -1
			}
			return 1
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

// splitDigits returns the leading run of digits of s and the rest.
func splitDigits(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// kernelModules are the modules a guest of the architecture loads, in load
// order, given the kernel's configuration (its /boot/config): the
// architecture's drivers the kernel builds as modules, then GuestModules.
// A driver neither built in nor a module is an error.
func kernelModules(a *Arch, config []byte) ([]string, error) {
	var mods []string
	for _, m := range a.Modules {
		switch v := configValue(config, m.Config); v {
		case "y":
		case "m":
			mods = append(mods, m.Path)
		default:
			return nil, fmt.Errorf("the kernel lacks %s (%s=%s), which the %s guest needs", filepath.Base(m.Path), m.Config, v, a.Name)
		}
	}
	return append(mods, GuestModules...), nil
}

// configValue is a symbol's value in a kernel configuration: "y", "m",
// a string or number as written, or "" when not set.
func configValue(config []byte, symbol string) string {
	for _, line := range strings.Split(string(config), "\n") {
		if v, ok := strings.CutPrefix(line, symbol+"="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// FetchKernel finds the newest linux-image-SERIES.*-cloud-ARCH-unsigned in
// the apt lists (those of the Debian release that ships the series, see
// OtherSuites, for the target's architecture), downloads it with apt-get
// into cache/debs (unless there already) and extracts its vmlinuz and the
// guest's modules into cache/kernels/RELEASE.
func FetchKernel(ctx context.Context, cache string, t Target) (*Kernel, error) {
	series, arch := t.Series, t.Arch.Name
	if _, err := packagePattern(series, arch); err != nil {
		return nil, err
	}
	apt, err := aptOptions(ctx, cache, t)
	if err != nil {
		return nil, err
	}
	query := `^linux-image-` + regexp.QuoteMeta(series) + `\..*-cloud-` + regexp.QuoteMeta(arch) + `-unsigned$`
	out, err := run(ctx, "", "apt-cache", append(apt, "search", "--names-only", query)...)
	if err != nil {
		return nil, err
	}
	pkg, release, err := newestPackage(out, series, arch)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "kernels", release)
	k := &Kernel{Series: series, Arch: t.Arch, Package: pkg, Release: release, Vmlinuz: filepath.Join(dir, "vmlinuz")}
	setModules := func(config []byte) ([]string, error) {
		modules, err := kernelModules(t.Arch, config)
		if err != nil {
			return nil, err
		}
		k.Modules = nil
		for _, m := range modules {
			k.Modules = append(k.Modules, filepath.Join(dir, "modules", filepath.Base(m)+".ko"))
		}
		return modules, nil
	}
	if _, err := os.Stat(k.Vmlinuz); err == nil {
		config, err := os.ReadFile(filepath.Join(dir, "config"))
		if err != nil {
			return nil, err
		}
		if _, err := setModules(config); err != nil {
			return nil, err
		}
		return k, nil
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return nil, fmt.Errorf("create deb cache: %w", err)
	}
	deb, err := findDeb(debs, pkg, arch)
	if err != nil {
		// The sandbox user of apt cannot write into a root-owned cache.
		if _, err := run(ctx, debs, "apt-get", append(apt, "download", "-q", "-o", "APT::Sandbox::User=root", pkg)...); err != nil {
			return nil, err
		}
		if deb, err = findDeb(debs, pkg, arch); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(cache, "extract-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	// The image and its config, then the few modules the guest loads
	// (which the config tells).
	script := `deb=$1 dir=$2; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" --wildcards "$@"`
	if _, err := run(ctx, "", "sh", "-c", script, "sh", deb, tmp, "./boot/vmlinuz-"+release, "./boot/config-"+release); err != nil {
		return nil, fmt.Errorf("extract %s: %w", filepath.Base(deb), err)
	}
	config, err := os.ReadFile(filepath.Join(tmp, "boot", "config-"+release))
	if err != nil {
		return nil, err
	}
	modules, err := setModules(config)
	if err != nil {
		return nil, err
	}
	var members []string
	for _, m := range modules {
		members = append(members, "./lib/modules/"+release+"/"+m+".ko*")
	}
	if _, err := run(ctx, "", "sh", append([]string{"-c", script, "sh", deb, tmp}, members...)...); err != nil {
		return nil, fmt.Errorf("extract %s: %w", filepath.Base(deb), err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
		return nil, fmt.Errorf("create kernel cache: %w", err)
	}
	for i, m := range modules {
		if err := uncompressModule(ctx, filepath.Join(tmp, "lib/modules", release, m), k.Modules[i]); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{"config", "vmlinuz"} { // vmlinuz last: its presence marks a complete entry
		if err := os.Rename(filepath.Join(tmp, "boot", f+"-"+release), filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("%s of %s: %w", f, pkg, err)
		}
	}
	return k, nil
}

// uncompressModule writes module base (base.ko, or base.ko.xz as 6.12 ships
// them) uncompressed to dst, so busybox's insmod can load it.
func uncompressModule(ctx context.Context, base, dst string) error {
	if _, err := os.Stat(base + ".ko"); err == nil {
		return os.Rename(base+".ko", dst)
	}
	if _, err := os.Stat(base + ".ko.xz"); err != nil {
		return fmt.Errorf("module %s not in the package: %w", filepath.Base(base), err)
	}
	out, err := run(ctx, "", "xz", "-dc", base+".ko.xz")
	if err != nil {
		return fmt.Errorf("uncompress module %s (Debian package xz-utils): %w", filepath.Base(base), err)
	}
	return os.WriteFile(dst, out, 0o644)
}

// findDeb returns the downloaded .deb of pkg for arch in dir.
func findDeb(dir, pkg, arch string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, pkg+"_*_"+arch+".deb"))
	if err != nil {
		return "", err
	}
	if len(m) == 0 {
		return "", fmt.Errorf("%s: no .deb in %s", pkg, dir)
	}
	slices.SortFunc(m, naturalCompare)
	return m[len(m)-1], nil
}

// run runs a command (in dir, if not empty) and returns its stdout; the
// error carries its stderr.
func run(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return stdout.Bytes(), nil
}

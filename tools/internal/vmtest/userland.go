package vmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// FetchUserland provides the guest programs of a foreign target: it
// downloads the Debian packages pkgs of the target's architecture (from
// the release that ships its kernel) with the shared libraries they depend
// on, into cache/debs, and unpacks them into one tree, cache/userland/NAME,
// which it returns. The tree is reused while the package list is the same.
func FetchUserland(ctx context.Context, cache string, t Target, pkgs []string) (string, error) {
	apt, err := aptOptions(ctx, cache, t)
	if err != nil {
		return "", err
	}
	all, err := withLibraries(ctx, apt, pkgs)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "userland", t.Name())
	stamp := filepath.Join(dir, ".packages")
	want := strings.Join(all, "\n") + "\n"
	if have, err := os.ReadFile(stamp); err == nil && string(have) == want {
		return dir, nil
	}
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return "", fmt.Errorf("create deb cache: %w", err)
	}
	var missing []string
	for _, p := range all {
		if _, err := findPackageDeb(debs, p, t.Arch.Name); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		if _, err := run(ctx, debs, "apt-get", append(append(apt, "download", "-q"), missing...)...); err != nil {
			return "", fmt.Errorf("download the guest's %s packages: %w", t.Arch.Name, err)
		}
	}
	tmp, err := os.MkdirTemp(cache, "userland-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, p := range all {
		deb, err := findPackageDeb(debs, p, t.Arch.Name)
		if err != nil {
			return "", err
		}
		if _, err := run(ctx, "", "dpkg-deb", "-x", deb, tmp); err != nil {
			return "", fmt.Errorf("unpack %s: %w", filepath.Base(deb), err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".packages"), []byte(want), 0o644); err != nil {
		return "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("userland of %s: %w", t.Name(), err)
	}
	return dir, nil
}

// withLibraries returns pkgs with the library packages (Debian section
// "libs") they depend on, directly or through other libraries, sorted. Other
// dependencies (debconf, perl, dpkg, ...) are what a package's maintainer
// scripts need, not its programs: the guest never installs anything.
func withLibraries(ctx context.Context, apt, pkgs []string) ([]string, error) {
	have := map[string]bool{}
	for _, p := range pkgs {
		have[p] = true
	}
	next := slices.Clone(pkgs)
	for len(next) > 0 {
		out, err := run(ctx, "", "apt-cache", append(append(apt, "depends", "--no-recommends", "--no-suggests",
			"--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"), next...)...)
		if err != nil {
			return nil, err
		}
		var deps []string
		for _, d := range parseDepends(out) {
			if !have[d] {
				deps = append(deps, d)
			}
		}
		next = nil
		if len(deps) == 0 {
			break
		}
		out, err = run(ctx, "", "apt-cache", append(append(apt, "show", "--no-all-versions"), deps...)...)
		if err != nil {
			return nil, err
		}
		for _, d := range libraryPackages(out) {
			if !have[d] {
				have[d] = true
				next = append(next, d)
			}
		}
	}
	all := make([]string, 0, len(have))
	for p := range have {
		all = append(all, p)
	}
	slices.Sort(all)
	return all, nil
}

// dependsLine matches a real package that `apt-cache depends` lists as a
// dependency ("  Depends: libc6", " |Depends: libbpf1", "  PreDepends:
// libc6", "  Depends: perl:any"); virtual ones are in angle brackets.
var dependsLine = regexp.MustCompile(`^\s+\|?(?:Pre)?Depends: ([a-z0-9][a-z0-9+.-]+)(?::[a-z0-9]+)?$`)

// parseDepends lists the real packages of `apt-cache depends` output, once
// each, in order.
func parseDepends(out []byte) []string {
	var deps []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := dependsLine.FindStringSubmatch(line); m != nil && !slices.Contains(deps, m[1]) {
			deps = append(deps, m[1])
		}
	}
	return deps
}

// libraryPackages lists the packages of section libs (in any archive area,
// e.g. "non-free/libs") in `apt-cache show` output.
func libraryPackages(out []byte) []string {
	var libs []string
	pkg := ""
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Package: "); ok {
			pkg = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "Section: "); ok {
			v = strings.TrimSpace(v)
			if (v == "libs" || strings.HasSuffix(v, "/libs")) && pkg != "" && !slices.Contains(libs, pkg) {
				libs = append(libs, pkg)
			}
		}
	}
	return libs
}

// findPackageDeb returns the downloaded .deb of pkg for arch, or for all
// architectures (libaudit-common, ...), in dir.
func findPackageDeb(dir, pkg, arch string) (string, error) {
	if deb, err := findDeb(dir, pkg, arch); err == nil {
		return deb, nil
	}
	return findDeb(dir, pkg, "all")
}

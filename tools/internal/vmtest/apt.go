package vmtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// OtherSuites are the kernel series that the host's Debian release does not
// ship, with the Debian suite that does: Debian 11 (bullseye) has 5.10.
var OtherSuites = map[string]string{"5.10": "bullseye"}

// debianKeyring verifies the archive's Release files (Debian package
// debian-archive-keyring; it holds the keys of the older releases too).
const debianKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// aptOptions returns the apt-get and apt-cache options that find and
// download a target's packages. For a series of the host's release on the
// host's architecture, none: its own lists. Otherwise a private apt
// configuration in cache/apt/SUITE (or SUITE-ARCH for another
// architecture: its sources list, lists and package cache) that names the
// suite at the archive the host's apt uses for Debian (sourcesList), for
// that architecture only, refreshed once a day: the host's apt
// configuration is never touched.
func aptOptions(ctx context.Context, cache string, t Target) ([]string, error) {
	suite, other := OtherSuites[t.Series]
	if !other && !t.Foreign() {
		return nil, nil
	}
	var targets []byte
	for _, label := range []string{"Debian", "Debian-Security"} {
		out, err := run(ctx, "", "apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)", "Identifier: Packages", "Label: "+label)
		if err != nil {
			return nil, fmt.Errorf("find the host's Debian archive: %w", err)
		}
		targets = append(targets, out...)
	}
	sources, suite, err := sourcesList(targets, suite, t.Arch.Name)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", t.Name(), err)
	}
	name := suite
	if t.Foreign() {
		name += "-" + t.Arch.Name
	}
	dir, err := filepath.Abs(filepath.Join(cache, "apt", name))
	if err != nil {
		return nil, err
	}
	opts := privateApt(dir, t.Arch.Name, t.Foreign())
	stamp := filepath.Join(dir, "updated")
	have, _ := os.ReadFile(filepath.Join(dir, "sources.list"))
	if st, err := os.Stat(stamp); err == nil && time.Since(st.ModTime()) < 24*time.Hour && string(have) == sources {
		return opts, nil
	}
	for _, d := range []string{"sources.list.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("apt directory for %s: %w", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "sources.list"), []byte(sources), 0o644); err != nil {
		return nil, err
	}
	// Only the package lists: no translations, contents or other metadata.
	if _, err := run(ctx, "", "apt-get", append(opts, "-q", "-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false", "-o", "Acquire::Languages=none", "update")...); err != nil {
		return nil, fmt.Errorf("apt-get update of Debian %s (for kernel %s): %w", name, t.Name(), err)
	}
	return opts, os.WriteFile(stamp, nil, 0o644)
}

// privateApt are the options of the private apt configuration in dir; for
// a foreign architecture, apt takes it for its own (and the only one).
func privateApt(dir, arch string, foreign bool) []string {
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "APT::Sandbox::User=root",
	}
	if foreign {
		opts = append(opts, "-o", "APT::Architecture="+arch, "-o", "APT::Architectures="+arch)
	}
	return opts
}

// sourcesList writes the private sources list for arch from `apt-get
// indextargets --format '$(REPO_URI) $(RELEASE)'` output of the host's
// Debian lists (the main archive's first, then the security archive's),
// and returns it with the suite it is for. For another release (suite
// set), that suite at the host's main archive; for the host's own release
// (suite empty), every suite of it the host uses (the release, its
// updates and security suites), as the host's lists have them.
func sourcesList(indextargets []byte, suite, arch string) (string, string, error) {
	var lines []string
	release := ""
	for _, l := range strings.Split(string(indextargets), "\n") {
		uri, rel, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok || uri == "" || rel == "" {
			continue
		}
		if suite != "" {
			return fmt.Sprintf("deb [arch=%s signed-by=%s] %s %s main\n", arch, debianKeyring, uri, suite), suite, nil
		}
		if release == "" && !strings.Contains(rel, "-") {
			release = rel
		}
		line := fmt.Sprintf("deb [arch=%s signed-by=%s] %s %s main\n", arch, debianKeyring, uri, rel)
		if !slices.Contains(lines, line) {
			lines = append(lines, line)
		}
	}
	switch {
	case suite != "":
		return "", "", fmt.Errorf("it is in Debian's %s: the host's apt knows no Debian archive to fetch it from", suite)
	case release == "":
		return "", "", errors.New("the host's apt knows no Debian release to fetch it from")
	}
	return strings.Join(lines, ""), release, nil
}

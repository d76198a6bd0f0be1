package vmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
// download a series' package. For a series of the host's release, none: its
// own lists. For one of OtherSuites, a private apt configuration in
// cache/apt/SUITE (its sources list, lists and package cache) that names
// the suite at the archive the host's apt uses for Debian, refreshed once a
// day: the host's apt configuration is never touched.
func aptOptions(ctx context.Context, cache, series string) ([]string, error) {
	suite, ok := OtherSuites[series]
	if !ok {
		return nil, nil
	}
	dir, err := filepath.Abs(filepath.Join(cache, "apt", suite))
	if err != nil {
		return nil, err
	}
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "APT::Sandbox::User=root",
	}
	stamp := filepath.Join(dir, "updated")
	if st, err := os.Stat(stamp); err == nil && time.Since(st.ModTime()) < 24*time.Hour {
		return opts, nil
	}
	out, err := run(ctx, "", "apt-get", "indextargets", "--format", "$(REPO_URI)", "Identifier: Packages", "Label: Debian")
	if err != nil {
		return nil, fmt.Errorf("find the host's Debian archive: %w", err)
	}
	archive, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if archive == "" {
		return nil, fmt.Errorf("kernel %s is in Debian's %s: the host's apt knows no Debian archive to fetch it from", series, suite)
	}
	for _, d := range []string{"sources.list.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("apt directory for %s: %w", suite, err)
		}
	}
	line := fmt.Sprintf("deb [signed-by=%s] %s %s main\n", debianKeyring, archive, suite)
	if err := os.WriteFile(filepath.Join(dir, "sources.list"), []byte(line), 0o644); err != nil {
		return nil, err
	}
	// Only the package lists: no translations, contents or other metadata.
	if _, err := run(ctx, "", "apt-get", append(opts, "-q", "-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false", "-o", "Acquire::Languages=none", "update")...); err != nil {
		return nil, fmt.Errorf("apt-get update of Debian %s (for kernel %s): %w", suite, series, err)
	}
	return opts, os.WriteFile(stamp, nil, 0o644)
}

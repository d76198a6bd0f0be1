// Package testenv holds what tests need to know about the machine they run on.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of a command from a Debian package. Missing,
// it skips the test with the reason, unless TCPCLOSE_REQUIRE_TOOLS=1 (as
// `make test` sets), where it fails the test instead.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("TCPCLOSE_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s is not installed (Debian package %s; `make deps` installs it)", name, pkg)
	}
	t.Skipf("skipped: %s is not installed (Debian package %s)", name, pkg)
	return ""
}

// Package testenv holds what tests need to know about the machine they run on.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
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

// OpenPTY returns the two ends of a new pseudo-terminal, neither made the
// controlling terminal, closed when the test ends (closing one earlier is
// fine). Without pseudo-terminals (a minimal guest) it skips the test.
func OpenPTY(t testing.TB) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("skipped: no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// Package testenv holds what tests need to know about the machine they run on.
package testenv

import (
	"os"
	"os/exec"
	"testing"
	"time"

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
// fine). The slave is opened from the master (TIOCGPTPEER), never by its
// /dev/pts path, which may name another terminal where more than one devpts
// is mounted, and a byte written to it is read back from the master before
// it is returned. Without pseudo-terminals (a minimal guest) it skips the
// test.
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
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno != 0 {
		t.Fatalf("open the pseudo-terminal's slave: %v", errno)
	}
	s := os.NewFile(fd, "pty-slave")
	t.Cleanup(func() { s.Close() })
	if _, err := s.Write([]byte{'.'}); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1)
	if err := m.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	defer m.SetReadDeadline(time.Time{})
	if _, err := m.Read(got); err != nil || got[0] != '.' {
		t.Fatalf("the pseudo-terminal's master did not read what its slave wrote: %q, %v", got, err)
	}
	return m, s
}

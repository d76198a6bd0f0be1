package selftest

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// privilege is a capability the self-test uses, and what for.
type privilege struct {
	capability int
	name       string
}

// needed are the capabilities the self-test's own work takes: creating a
// named network namespace (unshare and the bind mount under /run/netns),
// bringing its loopback up and setting its sysctls. Loading and attaching the
// programs needs CAP_BPF and CAP_PERFMON, which CAP_SYS_ADMIN includes.
var needed = []privilege{
	{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
	{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"},
}

// CheckPrivileges returns an error, one line, when this process lacks what
// the self-test needs: root with CAP_SYS_ADMIN and CAP_NET_ADMIN. Another
// user may run it with those and CAP_DAC_OVERRIDE (for /run/netns) as
// ambient capabilities, which ip and the helper processes inherit.
func CheckPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("selftest: read own capabilities: %w", err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	ambient := func(c int) bool {
		v, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, uintptr(c), 0, 0)
		return err == nil && v == 1
	}
	root := os.Geteuid() == 0
	need := needed
	if !root {
		need = append(need, privilege{unix.CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"})
	}
	var missing []string
	for _, p := range need {
		if !has(p.capability) || !root && !ambient(p.capability) {
			missing = append(missing, p.name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	who := "root without " + strings.Join(missing, ", ")
	if !root {
		who = fmt.Sprintf("uid %d without %s (ambient)", os.Geteuid(), strings.Join(missing, ", "))
	}
	return fmt.Errorf("selftest needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN (it creates a network namespace and loads BPF programs); running as %s", who)
}

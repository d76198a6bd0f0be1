package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestGuestInit checks the order of the guest's work: the suite between its
// markers, then the self-test's JSON between its own, both with the time
// scale, and the self-test bounded.
func TestGuestInit(t *testing.T) {
	cfg := &config{timeout: 60 * time.Minute, run: "TestSelftest"}
	init := guestInit([]string{"/lib/modules/inet_diag.ko"}, "/dev/ttyS1", suiteArgs(cfg))
	if strings.Contains(init, "%!") {
		t.Fatalf("bad format arguments:\n%s", init)
	}
	order := []string{
		"for m in /lib/modules/inet_diag.ko; do insmod $m",
		"export TCPCLOSE_TIME_SCALE=10\n",
		"out=/dev/ttyS1\n",
		`echo "VMTEST-BEGIN $(uname -r)" >$out`,
		"cd /src/e2e\n",
		"TCPCLOSE_TRACE_BIN=/usr/local/bin/tcpclose-trace TCPCLOSE_REQUIRE_TOOLS=1 ./e2e.test " +
			"'-test.v=test2json' '-test.count=1' '-test.timeout=49m0s' '-test.run=TestSelftest' >$out 2>&1\n",
		`echo "VMTEST-EXIT $?" >$out`,
		`echo "VMTEST-SELFTEST-BEGIN" >$out`,
		"timeout 480 /usr/local/bin/tcpclose-trace selftest -o json >$out\n",
		`echo "VMTEST-SELFTEST-EXIT $?" >$out`,
		"poweroff -f",
	}
	requireInOrder(t, init, order)
}

// TestGuestInitSelftestOnly checks the /init of a run without the suite
// (-suite=false), on an arm64 guest's output device: the markers still
// frame an empty suite, then the self-test runs.
func TestGuestInitSelftestOnly(t *testing.T) {
	init := guestInit([]string{"/lib/modules/virtio_console.ko"}, "/dev/hvc0", nil)
	if strings.Contains(init, "%!") || strings.Contains(init, "e2e.test") {
		t.Fatalf("bad init:\n%s", init)
	}
	order := []string{
		"for m in /lib/modules/virtio_console.ko; do insmod $m",
		"out=/dev/hvc0\n",
		`echo "VMTEST-BEGIN $(uname -r)" >$out`,
		": no suite, only the selftest\n",
		`echo "VMTEST-EXIT $?" >$out`,
		"timeout 480 /usr/local/bin/tcpclose-trace selftest -o json >$out\n",
	}
	requireInOrder(t, init, order)
}

func TestGuestPackages(t *testing.T) {
	tests := []struct {
		suite bool
		tools []string
		pkgs  []string
	}{
		{suite: true, tools: []string{"ip", "nstat", "sysctl", "setpriv", "prometheus", "promtool"},
			pkgs: []string{"busybox-static", "iproute2", "procps", "util-linux", "prometheus"}},
		{suite: false, tools: []string{"ip", "nstat", "sysctl"}, pkgs: []string{"busybox-static", "iproute2", "procps"}},
	}
	for _, tt := range tests {
		if got := guestToolsFor(tt.suite); !slices.Equal(got, tt.tools) {
			t.Errorf("suite %v: tools %v, want %v", tt.suite, got, tt.tools)
		}
		if got := guestPackages(tt.suite); !slices.Equal(got, tt.pkgs) {
			t.Errorf("suite %v: packages %v, want %v", tt.suite, got, tt.pkgs)
		}
	}
}

// requireInOrder fails unless every string of order occurs in init, each
// after the end of the one before.
func requireInOrder(t *testing.T, init string, order []string) {
	t.Helper()
	at := 0
	for _, want := range order {
		i := strings.Index(init[at:], want)
		if i < 0 {
			t.Fatalf("init lacks %q after byte %d:\n%s", want, at, init)
		}
		at += i + len(want)
	}
}

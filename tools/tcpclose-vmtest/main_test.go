package main

import (
	"strings"
	"testing"
	"time"
)

// TestGuestInit checks the order of the guest's work: the suite between its
// markers, then the self-test's JSON between its own, both with the time
// scale, and the self-test bounded.
func TestGuestInit(t *testing.T) {
	cfg := &config{timeout: 60 * time.Minute, run: "TestSelftest"}
	init := guestInit([]string{"/lib/modules/inet_diag.ko"}, suiteArgs(cfg))
	if strings.Contains(init, "%!") {
		t.Fatalf("bad format arguments:\n%s", init)
	}
	order := []string{
		"for m in /lib/modules/inet_diag.ko; do insmod $m",
		"export TCPCLOSE_TIME_SCALE=10\n",
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
	at := 0
	for _, want := range order {
		i := strings.Index(init[at:], want)
		if i < 0 {
			t.Fatalf("init lacks %q after byte %d:\n%s", want, at, init)
		}
		at += i + len(want)
	}
}

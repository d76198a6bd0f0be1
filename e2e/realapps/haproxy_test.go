package realapps

import (
	"fmt"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// haproxyConfig answers every request itself (no backend) and closes the
// client's connection with SO_LINGER {1, 0} (option nolinger): an abortive
// close on purpose. One thread, in the foreground (-db).
const haproxyConfig = `global
  nbthread 1
defaults
  mode http
  timeout client 10s
  timeout server 10s
  timeout connect 10s
frontend fe
  bind 127.0.0.1:%[1]d
  bind [::1]:%[1]d
  option nolinger
  http-request return status 200 content-type text/plain string "ok"
`

// TestHAProxyNolinger runs haproxy with option nolinger: every connection is
// one abort_close by haproxy, and the kernel counts it as
// TcpExtTCPAbortOnData (sic) and one RST sent.
func TestHAProxyNolinger(t *testing.T) {
	ns, tr, paths := setup(t, [2]string{"haproxy", "haproxy"}, [2]string{"curl", "curl"})
	const (
		port     = 8100
		requests = 10
	)
	cfg := writeFile(t, t.TempDir(), "haproxy.cfg", fmt.Sprintf(haproxyConfig, port))
	srv := startServer(t, ns, paths["haproxy"], "-db", "-f", cfg)
	srv.waitListening(t, ns, port, families...)
	name := comm(t, srv.pid())
	if name != "haproxy" {
		t.Fatalf("haproxy runs as %q", name)
	}
	for _, family := range families {
		t.Run(family, func(t *testing.T) {
			url := fmt.Sprintf("http://%s:%d/", loopback(family), port)
			m := measure(t, ns, tr, family, func() {
				for range requests {
					// HTTP/1.1: curl closes its kept-alive connection
					// first and haproxy closes from CLOSE_WAIT, always
					// with a reset. (Where haproxy closes first, as for
					// HTTP/1.0, it shuts down writing before close():
					// if the client's FIN and ACK come in between, the
					// connection is over before close() and nothing is
					// reset or counted.)
					client(t, ns, 20*time.Second, paths["curl"], "-s", "-o", "/dev/null", "--max-time", "10", url)
				}
			})
			closedBy(t, m.events, port, name, []int{srv.pid()}, "curl")
			n := m.byKind()
			if n[collector.KindAbortClose] != requests {
				t.Errorf("abort_close %d, want one per request (%d)", n[collector.KindAbortClose], requests)
			}
			if got := m.mib["TcpExtTCPAbortOnData"]; got != requests {
				t.Errorf("TcpExtTCPAbortOnData delta %d, want %d", got, requests)
			}
			for _, ev := range m.events {
				if ev.Kind == collector.KindAbortClose && ev.LPort != port {
					t.Errorf("abort_close on :%d, want haproxy's :%d", ev.LPort, port)
				}
			}
		})
	}
}

package realapps

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

// nginxConfig runs nginx in the foreground with a master and two workers,
// everything it writes under the test's directory (%[1]s). Every request is
// answered with 444: nginx closes the connection at once, as soon as it has
// the request head, whatever body is still coming.
const nginxConfig = `daemon off;
master_process on;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log notice;
events {
  worker_connections 64;
}
http {
  access_log off;
  client_max_body_size 0;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d;
    listen [::1]:%[2]d;
    location / {
      return 444;
    }
  }
}
`

// nginxServer is a running nginx master and its workers.
type nginxServer struct {
	*server
	name    string // the workers' comm
	workers []int
}

func startNginx(t *testing.T, ns *scenario.Namespace, path string, port uint16) *nginxServer {
	t.Helper()
	dir := t.TempDir()
	// The workers run as nobody and must reach nothing here; the master
	// writes the pid and the log.
	cfg := writeFile(t, dir, "nginx.conf", fmt.Sprintf(nginxConfig, dir, port))
	srv := startServer(t, ns, path, "-c", cfg, "-e", filepath.Join(dir, "error.log"))
	srv.waitListening(t, ns, port, families...)
	n := &nginxServer{server: srv}
	deadline := time.Now().Add(15 * time.Second)
	for n.workers = children(t, srv.pid()); len(n.workers) < 2; n.workers = children(t, srv.pid()) {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx workers %v, want 2\n%s", n.workers, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.name = comm(t, n.workers[0])
	for _, w := range n.workers {
		if c := comm(t, w); c != "nginx" {
			t.Fatalf("nginx worker %d runs as %q", w, c)
		}
	}
	return n
}

// TestNginxUploadAbortOnData runs nginx answering uploads with an immediate
// close (return 444) while curl is still sending a large body. Each
// connection is closed by a worker with the body's head unread
// (unread_close, TcpExtTCPAbortOnClose) or with nothing unread
// (undrained_close); after the latter, the body's next segment is refused
// with RST and the kernel counts TcpExtTCPAbortOnData: each of those must be
// one data_after_close, attributed to the worker that closed.
//
// The refused segment usually also ACKs the worker's FIN (the socket is in
// FIN_WAIT1), the path where the kernel calls tcp_done() without
// tcp_reset().
func TestNginxUploadAbortOnData(t *testing.T) {
	ns, tr, paths := setup(t, [2]string{"nginx", "nginx"}, [2]string{"curl", "curl"})
	const (
		port    = 8200
		uploads = 20
		body    = 4 << 20
	)
	srv := startNginx(t, ns, paths["nginx"], port)
	upload := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(upload, make([]byte, body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, family := range families {
		t.Run(family, func(t *testing.T) {
			url := fmt.Sprintf("http://%s:%d/", loopback(family), port)
			m := measure(t, ns, tr, family, func() {
				for range uploads {
					// No Expect: 100-continue: curl sends the body at once.
					client(t, ns, 20*time.Second, paths["curl"], "-s", "-o", "/dev/null", "--max-time", "10",
						"-H", "Expect:", "--data-binary", "@"+upload, url)
				}
			})
			closedBy(t, m.events, port, srv.name, srv.workers, "curl")
			n := m.byKind()
			// One close by nginx per upload, unread or undrained.
			closes := 0
			for _, ev := range m.events {
				if ev.LPort == port && (ev.Kind == collector.KindUnreadClose || ev.Kind == collector.KindUndrainedClose) {
					closes++
				}
			}
			if closes != uploads {
				t.Errorf("nginx closed %d connections (unread_close or undrained_close), want %d", closes, uploads)
			}
			// A TIME_WAIT mini-socket's refusal is not TcpExtTCPAbortOnData.
			var fullRefusals uint64
			for _, ev := range m.events {
				if ev.Kind == collector.KindDataAfterClose && !ev.TimeWait {
					fullRefusals++
				}
			}
			if want := m.mib["TcpExtTCPAbortOnData"]; fullRefusals != want {
				t.Errorf("data_after_close of a full socket %d, TcpExtTCPAbortOnData delta %d", fullRefusals, want)
			}
			if got, want := uint64(n[collector.KindUnreadClose]), m.mib["TcpExtTCPAbortOnClose"]; got != want {
				t.Errorf("unread_close %d, TcpExtTCPAbortOnClose delta %d", got, want)
			}
			if n[collector.KindAbortClose] != 0 {
				t.Errorf("abort_close %d, want none (nginx does not linger 0)", n[collector.KindAbortClose])
			}
			if m.mib["TcpExtTCPAbortOnData"] == 0 {
				t.Errorf("no upload reached a closed socket (TcpExtTCPAbortOnData delta 0): the case did not happen")
			}
			// Each refusal by a full socket follows the undrained close of
			// that socket (same cookie) and names the same worker.
			closedWith := map[uint64]uint32{}
			for _, ev := range m.events {
				if ev.Kind == collector.KindUndrainedClose && ev.LPort == port {
					closedWith[ev.Cookie] = ev.PID
				}
			}
			for _, ev := range m.events {
				if ev.Kind != collector.KindDataAfterClose {
					continue
				}
				if ev.LPort != port {
					t.Errorf("data_after_close on :%d, want nginx's :%d", ev.LPort, port)
				}
				if pid, ok := closedWith[ev.Cookie]; !ev.TimeWait && (!ok || pid != ev.PID) {
					t.Errorf("data_after_close on :%d (cookie %d) by pid %d: the socket's undrained_close by %d (found %v)", ev.LPort, ev.Cookie, ev.PID, pid, ok)
				}
			}
		})
	}
}

package realapps

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// refuseUpload is a Python http.server (Debian's python3, standard library
// only) that answers every POST with 413 without reading its body, after
// the whole body has arrived, and closes: the body is unread at close().
// The request file is unbuffered (rbufsize 0), so the server reads exactly
// the request head and the body is what the kernel discards.
//
// The server closes without socketserver's shutdown(SHUT_WR) first: after
// that FIN the client (which has its whole answer) may close and ACK it
// before the server's close(), and the kernel then frees the connection
// without a reset and without counting the discarded body.
const refuseUpload = `
import fcntl, http.server, socket, struct, sys, termios, time

class Server(http.server.HTTPServer):
    address_family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET

    def shutdown_request(self, request):
        self.close_request(request)

class Refuse(http.server.BaseHTTPRequestHandler):
    rbufsize = 0

    def queued(self):
        b = fcntl.ioctl(self.connection, termios.FIONREAD, b'\0\0\0\0')
        return struct.unpack('i', b)[0]

    def do_POST(self):
        length = int(self.headers['Content-Length'])
        deadline = time.monotonic() + 10
        while self.queued() < length and time.monotonic() < deadline:
            time.sleep(0.001)
        self.close_connection = True
        self.send_response(413)
        self.send_header('Content-Length', '0')
        self.send_header('Connection', 'close')
        self.end_headers()

    def log_message(self, format, *args):
        pass

Server((sys.argv[1], int(sys.argv[2])), Refuse).serve_forever()
`

// TestPythonUnreadClose runs Python's http.server refusing uploads without
// reading them: every connection is one unread_close by python3 whose
// unread bytes are exactly the body, and the kernel counts one
// TcpExtTCPAbortOnClose for each.
func TestPythonUnreadClose(t *testing.T) {
	ns, tr, paths := setup(t, [2]string{"/usr/bin/python3", "python3"}, [2]string{"curl", "curl"})
	dir := t.TempDir()
	script := writeFile(t, dir, "refuse.py", refuseUpload)
	const (
		requests = 10
		body     = 20000
	)
	upload := filepath.Join(dir, "body")
	if err := os.WriteFile(upload, make([]byte, body), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, family := range families {
		t.Run(family, func(t *testing.T) {
			port := uint16(8000 + i)
			host := map[string]string{"ipv4": "127.0.0.1", "ipv6": "::1"}[family]
			srv := startServer(t, ns, paths["python3"], script, host, strconv.Itoa(int(port)))
			srv.waitListening(t, ns, port, family)
			name := comm(t, srv.pid())
			if name != "python3" {
				t.Fatalf("Debian's python3 runs as %q, want python3", name)
			}
			url := fmt.Sprintf("http://%s:%d/", loopback(family), port)
			m := measure(t, ns, tr, family, func() {
				for range requests {
					// No Expect: 100-continue: curl sends the body at once.
					client(t, ns, 20*time.Second, paths["curl"], "-s", "-o", "/dev/null", "--max-time", "10",
						"-H", "Expect:", "--data-binary", "@"+upload, url)
				}
			})
			closedBy(t, m.events, port, name, []int{srv.pid()}, "curl")
			n := m.byKind()
			if n[collector.KindUnreadClose] != requests {
				t.Errorf("unread_close %d, want one per request (%d)", n[collector.KindUnreadClose], requests)
			}
			if got := m.mib["TcpExtTCPAbortOnClose"]; got != requests {
				t.Errorf("TcpExtTCPAbortOnClose delta %d, want %d", got, requests)
			}
			for _, ev := range m.events {
				if ev.Kind == collector.KindUnreadClose && (ev.UnreadBytes != body || ev.LPort != port) {
					t.Errorf("unread_close on :%d with %d unread bytes, want :%d with the body's %d", ev.LPort, ev.UnreadBytes, port, body)
				}
			}
		})
	}
}

package realapps

import (
	"strconv"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// refuseJava is a Java server (Debian's OpenJDK, run from source) that
// hands each connection to a pool thread named handler-N, which waits
// until the whole request has arrived and closes without reading it: an
// unread close made by a thread that is not the JVM's main thread, as
// servlet containers' worker threads make them.
const refuseJava = `
import java.net.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicInteger;

public class Refuse {
    public static void main(String[] args) throws Exception {
        int want = Integer.parseInt(args[2]);
        AtomicInteger n = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(2,
            r -> new Thread(r, "handler-" + n.incrementAndGet()));
        try (ServerSocket ss = new ServerSocket()) {
            ss.bind(new InetSocketAddress(InetAddress.getByName(args[0]), Integer.parseInt(args[1])));
            while (true) {
                Socket s = ss.accept();
                pool.execute(() -> {
                    try (s) {
                        long deadline = System.nanoTime() + 10_000_000_000L;
                        while (s.getInputStream().available() < want && System.nanoTime() < deadline) {
                            Thread.sleep(1);
                        }
                    } catch (Exception e) {
                        e.printStackTrace();
                    }
                });
            }
        }
    }
}
`

// lingeringClient sends argv[3] bytes to argv[1]:argv[2] and reads until
// the server's FIN or reset; after a FIN it keeps its socket open a while.
// Java's Socket.close() shuts the output down first: a client that closed
// at once on that FIN (as curl does) could finish the connection before
// the server's close(), which then discards the unread data with no reset
// and no counter (the kernel's own silence, which the tracer shares).
const lingeringClient = `
import socket, sys, time
family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(bytes(int(sys.argv[3])))
try:
    while s.recv(4096):
        pass
    time.sleep(0.5)
except ConnectionResetError:
    pass
s.close()
`

// TestJavaWorkerThreadClose runs that server under OpenJDK: every
// connection is one unread_close whose comm is the process (java), whose
// thread is the pool thread that closed (handler-N, not the pid), and the
// kernel counts one TcpExtTCPAbortOnClose for each.
func TestJavaWorkerThreadClose(t *testing.T) {
	ns, tr, paths := setup(t, [2]string{"/usr/bin/java", "openjdk-17-jdk-headless"}, [2]string{"/usr/bin/python3", "python3"})
	dir := t.TempDir()
	src := writeFile(t, dir, "Refuse.java", refuseJava)
	cli := writeFile(t, dir, "client.py", lingeringClient)
	const (
		requests = 6
		body     = 20000
	)
	for i, family := range families {
		t.Run(family, func(t *testing.T) {
			port := uint16(8100 + i)
			host := map[string]string{"ipv4": "127.0.0.1", "ipv6": "::1"}[family]
			args := []string{src}
			if family == "ipv4" {
				// Else the JVM listens on an IPv6 socket, at ::ffff:127.0.0.1.
				args = []string{"-Djava.net.preferIPv4Stack=true", src}
			}
			srv := startServer(t, ns, paths["java"], append(args, host, strconv.Itoa(int(port)), strconv.Itoa(body))...)
			srv.waitListening(t, ns, port, family)
			name := comm(t, srv.pid())
			if name != "java" {
				t.Fatalf("Debian's OpenJDK runs as %q, want java", name)
			}
			m := measure(t, ns, tr, family, func() {
				for range requests {
					if code := client(t, ns, 20*time.Second, paths["python3"], cli, host, strconv.Itoa(int(port)), strconv.Itoa(body)); code != 0 {
						t.Errorf("client exited with %d", code)
					}
				}
			})
			closedBy(t, m.events, port, name, []int{srv.pid()}, "python3")
			n := m.byKind()
			if n[collector.KindUnreadClose] != requests {
				t.Errorf("unread_close %d, want one per request (%d)", n[collector.KindUnreadClose], requests)
			}
			if got := m.mib["TcpExtTCPAbortOnClose"]; got != requests {
				t.Errorf("TcpExtTCPAbortOnClose delta %d, want %d", got, requests)
			}
			for _, ev := range m.events {
				if ev.Kind != collector.KindUnreadClose {
					continue
				}
				if ev.UnreadBytes != body || ev.LPort != port {
					t.Errorf("unread_close on :%d with %d unread bytes, want :%d with the client's %d", ev.LPort, ev.UnreadBytes, port, body)
				}
				if ev.Thread != "handler-1" && ev.Thread != "handler-2" || int(ev.TID) == srv.pid() {
					t.Errorf("unread_close by thread %q (tid %d of pid %d), want a pool thread handler-N", ev.Thread, ev.TID, ev.PID)
				}
			}
		})
	}
}

// Package loadgen drives bounded loopback TCP load in the caller's network
// namespace, one close pattern per workload, for the benchmark.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Workload is a close pattern.
type Workload string

// The workloads of the benchmark.
const (
	Graceful   Workload = "W1" // server closes first, both sides drain: no anomaly
	Unread     Workload = "W2" // server closes with the request unread: unread_close + reset_received
	LingerZero Workload = "W3" // client closes with SO_LINGER {on, 0}: abort_close
	ClosedPort Workload = "W4" // SYN to a closed port: reset_sent NO_SOCKET
	Burst      Workload = "W5" // W2 with many workers, as fast as possible
	Idle       Workload = "W6" // no connections
	// FullTables: the client closes before the server's EOF and the server
	// never sends again: one undrained_close each, which the tracer
	// remembers, so a run of more than its capacity fills its tables.
	FullTables Workload = "W7"
	// PingPong: each worker keeps one connection and makes Conns small
	// request/response exchanges on it, in all: the per-send and
	// per-receive cost on long-lived connections, with no close at all.
	PingPong Workload = "W8"
	// Bulk: as PingPong, but each exchange is many small writes (16 of
	// 64 bytes) answered by one short acknowledgement.
	Bulk Workload = "W9"
)

// persistent reports whether w reuses one connection per worker; its
// Result counts exchanges, not connections.
func (w Workload) persistent() bool { return w == PingPong || w == Bulk }

// Sizes of the persistent workloads' messages.
const (
	pingBytes  = 64
	bulkWrites = 16
	ackBytes   = 8
)

// Workloads lists the workloads of the throughput runs, in order. FullTables
// is run on its own (it measures memory, not throughput).
var Workloads = []Workload{Graceful, Unread, LingerZero, ClosedPort, Burst, Idle, PingPong, Bulk}

// Describe says what a workload does, for the report.
func (w Workload) Describe() string {
	switch w {
	case Graceful:
		return "server closes first, both sides drain (graceful, no anomaly)"
	case Unread:
		return "every connection closed with unread data (unread_close)"
	case LingerZero:
		return "client closes with SO_LINGER {on, 0} (abort_close)"
	case ClosedPort:
		return "SYN to a closed port (reset_sent NO_SOCKET)"
	case Burst:
		return "W2 from 8 workers at full speed (burst)"
	case Idle:
		return "no connections (idle)"
	case FullTables:
		return "client closes after the answer, before the server's EOF; the server never sends again (undrained_close, remembered by the tracer)"
	case PingPong:
		return "one persistent connection per worker, 64-byte request and response (exchanges, not connections; no close)"
	case Bulk:
		return "one persistent connection per worker, 16 writes of 64 bytes (TCP_NODELAY) answered by 8 (exchanges, not connections; no close)"
	}
	return string(w)
}

// Options bound a run: it stops after Conns connections or Duration,
// whichever comes first.
type Options struct {
	Conns    int
	Duration time.Duration
	Workers  int     // concurrent clients; 0 for 2 (8 for Burst)
	IPv6     bool    // ::1 instead of 127.0.0.1
	Rate     float64 // connections per second, all workers together; 0 for as fast as possible
}

// Result is what a run did.
type Result struct {
	Workload Workload      `json:"workload"`
	Conns    int64         `json:"conns"`  // connections completed
	Errors   int64         `json:"errors"` // connections that failed unexpectedly
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// PerSecond is the completed connections per second.
func (r Result) PerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Conns) / r.Elapsed.Seconds()
}

// Run drives workload w until its bound.
func Run(ctx context.Context, w Workload, o Options) (Result, error) {
	if o.Conns <= 0 || o.Duration <= 0 {
		return Result{}, errors.New("loadgen: Conns and Duration must be positive")
	}
	if o.Workers == 0 {
		o.Workers = 2
		if w == Burst {
			o.Workers = 8
		}
	}
	res := Result{Workload: w}
	if w == Idle {
		// Timed from before the timer starts, so Elapsed is never below Duration.
		start := time.Now()
		timer := time.NewTimer(o.Duration)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		res.Elapsed = time.Since(start)
		return res, nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	g, err := newGen(w, o.IPv6)
	if err != nil {
		return res, err
	}
	defer g.close()

	var done, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker its own address: unix.Connect writes the raw
			// form into the Sockaddr it is given.
			dst := g.dst()
			conn := -1
			if w.persistent() {
				var err error
				if conn, err = g.dial(dst); err != nil {
					failed.Add(1)
					g.lastErr.Store(fmt.Errorf("client: %w", err))
					return
				}
				defer unix.Close(conn)
			}
			for ctx.Err() == nil {
				n := done.Add(1)
				if n > int64(o.Conns) {
					done.Add(-1)
					return
				}
				if o.Rate > 0 {
					// Paced: the n-th connection starts no earlier than n/Rate
					// after the start, so the average rate holds even though
					// each sleep overshoots.
					if d := time.Until(start.Add(time.Duration(float64(n-1) / o.Rate * float64(time.Second)))); d > 0 {
						time.Sleep(d)
					}
				}
				client := func() error { return g.client(dst) }
				if conn >= 0 {
					client = func() error { return g.exchange(conn) }
				}
				if err := client(); err != nil {
					failed.Add(1)
					g.lastErr.Store(fmt.Errorf("client: %w", err))
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Conns = done.Load() - failed.Load()
	res.Errors = failed.Load()
	if res.Errors > res.Conns/100 {
		return res, fmt.Errorf("loadgen %s: %d of %d connections failed: %v", w, res.Errors, done.Load(), g.lastErr.Load())
	}
	return res, nil
}

// gen holds one workload's listener and server goroutines.
type gen struct {
	w       Workload
	family  int
	port    int // the listener's, on the loopback address
	lfd     int
	wg      sync.WaitGroup
	lastErr atomic.Value
}

func newGen(w Workload, ipv6 bool) (*gen, error) {
	g := &gen{w: w, family: unix.AF_INET, lfd: -1}
	if ipv6 {
		g.family = unix.AF_INET6
	}
	bind := g.dst() // port 0: the kernel picks one
	lfd, err := unix.Socket(g.family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	g.lfd = lfd
	if err := unix.Bind(lfd, bind); err != nil {
		g.close()
		return nil, fmt.Errorf("bind: %w", err)
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		g.close()
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		g.port = sa.Port
	case *unix.SockaddrInet6:
		g.port = sa.Port
	default:
		g.close()
		return nil, fmt.Errorf("getsockname: unexpected address %T", sa)
	}
	if w == ClosedPort {
		// Bound, never listening: SYNs to the port are refused.
		return g, nil
	}
	if err := unix.Listen(lfd, 4096); err != nil {
		g.close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	for range 4 {
		g.wg.Add(1)
		go g.acceptLoop()
	}
	return g, nil
}

func (g *gen) close() {
	if g.lfd >= 0 {
		// shutdown wakes the blocked accept()s; close alone would not.
		_ = unix.Shutdown(g.lfd, unix.SHUT_RDWR)
		g.wg.Wait()
		_ = unix.Close(g.lfd)
		g.lfd = -1
	}
}

func (g *gen) acceptLoop() {
	defer g.wg.Done()
	for {
		fd, _, err := unix.Accept4(g.lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			return
		}
		if err := g.server(fd); err != nil {
			g.lastErr.Store(fmt.Errorf("server: %w", err))
		}
	}
}

var (
	request  = make([]byte, 100)
	response = make([]byte, 64)
)

// server handles one accepted connection and closes it.
func (g *gen) server(fd int) error {
	defer unix.Close(fd)
	switch g.w {
	case Graceful:
		if err := readFull(fd, len(request)); err != nil {
			return err
		}
		if _, err := unix.Write(fd, response); err != nil {
			return err
		}
		if err := unix.Shutdown(fd, unix.SHUT_WR); err != nil {
			return err
		}
		return drain(fd)
	case Unread, Burst:
		// Wait until the request is queued, then close without reading it.
		_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 5000)
		return err
	case LingerZero:
		err := drain(fd)
		if errors.Is(err, unix.ECONNRESET) {
			return nil
		}
		return err
	case PingPong, Bulk:
		// Answer each request until the client's FIN.
		in, answer := pingBytes, response[:pingBytes]
		if g.w == Bulk {
			in, answer = pingBytes*bulkWrites, response[:ackBytes]
		}
		for {
			if err := readFull(fd, in); err != nil {
				if errors.Is(err, errEarlyEOF) {
					return nil // the client closed between exchanges
				}
				return err
			}
			if _, err := unix.Write(fd, answer); err != nil {
				return err
			}
		}
	case FullTables:
		// Answer, then wait for the client's FIN and close after it: the
		// client's close is undrained, and no data follows it.
		if err := readFull(fd, len(request)); err != nil {
			return err
		}
		if _, err := unix.Write(fd, response); err != nil {
			return err
		}
		return drain(fd)
	}
	return nil
}

// dst returns a new Sockaddr of the listener, for one worker alone.
func (g *gen) dst() unix.Sockaddr {
	if g.family == unix.AF_INET6 {
		return &unix.SockaddrInet6{Addr: [16]byte{15: 1}, Port: g.port}
	}
	return &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: g.port}
}

// client makes one connection of the workload to dst, which it may modify.
func (g *gen) client(dst unix.Sockaddr) error {
	fd, err := unix.Socket(g.family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, dst)
	if g.w == ClosedPort {
		if errors.Is(err, unix.ECONNREFUSED) {
			return nil
		}
		return fmt.Errorf("connect to a closed port: %v", err)
	}
	if err != nil {
		return err
	}
	switch g.w {
	case Graceful:
		if _, err := unix.Write(fd, request); err != nil {
			return err
		}
		return drain(fd)
	case Unread, Burst:
		if _, err := unix.Write(fd, request); err != nil {
			return err
		}
		if err := drain(fd); err != nil && !errors.Is(err, unix.ECONNRESET) {
			return err
		}
		return nil
	case LingerZero:
		if _, err := unix.Write(fd, request[:10]); err != nil {
			return err
		}
		return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	case FullTables:
		// Read the whole answer, then close before the server's FIN.
		if _, err := unix.Write(fd, request); err != nil {
			return err
		}
		return readFull(fd, len(response))
	}
	return nil
}

// dial connects a persistent workload's connection to dst.
func (g *gen) dial(dst unix.Sockaddr) (int, error) {
	fd, err := unix.Socket(g.family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// Each small write goes out at once, as in applications that make
	// small writes (they set TCP_NODELAY): else Nagle's algorithm holds a
	// write back until the peer's delayed ACK, and W9 measures that wait
	// (about 45 exchanges a second) rather than the calls.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Connect(fd, dst); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// exchange makes one request/response of a persistent workload on fd.
func (g *gen) exchange(fd int) error {
	if g.w == Bulk {
		for range bulkWrites {
			if _, err := unix.Write(fd, request[:pingBytes]); err != nil {
				return err
			}
		}
		return readFull(fd, ackBytes)
	}
	if _, err := unix.Write(fd, request[:pingBytes]); err != nil {
		return err
	}
	return readFull(fd, pingBytes)
}

// errEarlyEOF: the peer closed before n bytes came.
var errEarlyEOF = errors.New("early EOF")

// readFull reads exactly n bytes.
func readFull(fd, n int) error {
	buf := make([]byte, n)
	for got := 0; got < n; {
		m, err := unix.Read(fd, buf[got:])
		if err != nil {
			return err
		}
		if m == 0 {
			return errEarlyEOF
		}
		got += m
	}
	return nil
}

// drain reads until EOF.
func drain(fd int) error {
	var buf [512]byte
	for {
		n, err := unix.Read(fd, buf[:])
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		if n == 0 {
			return nil
		}
	}
}

package scenario

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// runTimeout bounds one Run, helpers' start and exit included.
const runTimeout = 10 * time.Second

// Bytes each scenario moves.
const (
	unreadBytes   = 1234 // unread_close: peer -> closer, never read
	refusedBytes  = 100  // undrained_*: peer -> closer's orphan, answered by RST
	gracefulBytes = 10   // graceful: closer -> peer
	gracefulReply = 5    // graceful: peer -> closer
	resetBytes    = 10   // peer_reset: peer -> closer, read before the reset
	smallBuf      = 4096 // linger_zero: SO_RCVBUF of the peer, SO_SNDBUF of the closer

	undrainedLinger = 5 // undrained_*: SO_LINGER seconds of the closer
)

// Result is what one scenario did, with the exact numbers the tracer must
// report.
type Result struct {
	Name   string
	Family string // "ipv4" or "ipv6"
	Closer Proc   // the process that closed badly (the culprit)
	Peer   Proc   // the other end; zero for closed_port
	// CloserPort is the local port of the closer's socket.
	CloserPort uint16
	// PeerPort is the local port of the peer's socket; for closed_port, the
	// port nothing listened on (the source port of the kernel's reset).
	PeerPort uint16
	// UnreadBytes is the number of bytes unread at close (unread_close).
	UnreadBytes uint32
	// UnsentBytes is the number of bytes unsent or unacked at close
	// (linger_zero), as ioctl SIOCOUTQ gave it right before close.
	UnsentBytes uint32
	// RefusedBytes is the payload the peer sent after the close
	// (undrained_fin_wait, undrained_time_wait; upload_refused: the payload
	// of the first segment after the closer's FIN, seen on the wire).
	RefusedBytes uint32
	// ListenerResets is, for upload_refused and shutdown_unread, how many
	// of the peer's segments still in flight after the abort the closer's
	// listener answered with a reset (seen on the wire). A segment that reaches the
	// aborted socket while its closer still holds it (its backlog) is
	// dropped without a reset, so this depends on timing.
	ListenerResets int
}

// ErrUnsupported is wrapped by the error of a scenario this kernel cannot
// run (see Run).
var ErrUnsupported = errors.New("not supported by this kernel")

var scenarios = map[string]func(*driver) *Result{
	"unread_close":        unreadClose,
	"undrained_fin_wait":  func(d *driver) *Result { return undrained(d, false) },
	"undrained_time_wait": func(d *driver) *Result { return undrained(d, true) },
	"linger_zero":         lingerZero,
	"graceful":            graceful,
	"closed_port":         closedPort,
	"peer_reset":          peerReset,
	"handoff":             handoff,
	"upload_refused":      uploadRefused,
	"shutdown_unread":     shutdownUnread,
	"half_open":           halfOpen,
	"no_storage":          noStorage,
	"worker_thread":       workerThread,
	"old_socket":          oldSocket,
	"call_site":           callSite,
	"undrained_quiet":     undrainedQuiet,
}

// Names lists the scenarios of the detection matrix (the self-test's and
// the end-to-end suite's), in a fixed order. Run also knows
// undrained_quiet, which tests what the outputs show.
func Names() []string {
	return []string{"unread_close", "undrained_fin_wait", "undrained_time_wait",
		"linger_zero", "graceful", "closed_port", "peer_reset", "handoff",
		"upload_refused", "shutdown_unread", "half_open", "no_storage", "worker_thread", "old_socket"}
}

// Run runs one scenario for family "ipv4" (127.0.0.1) or "ipv6" (::1) inside
// ns, and returns once it is complete: helpers exited, no full socket left.
// undrained_fin_wait needs net.ipv4.tcp_fin_timeout above 60 in ns,
// undrained_time_wait needs it at most 60 (the default). no_storage sets
// net.core.optmem_max in ns for its run; where that sysctl is not per
// namespace (before Linux 6.9) it fails with an error wrapping
// ErrUnsupported. Runs on one namespace must not overlap.
func Run(ns *Namespace, name, family string) (*Result, error) {
	return RunAs(ns, name, family, "")
}

// RunAs is Run with the closer named comm instead of tct-closer: right
// after it starts, before it opens a socket, it names itself comm with
// prctl(PR_SET_NAME), as any unprivileged process can, whatever bytes comm
// holds but NUL (the kernel keeps 15). Result.Closer.Comm is that name.
// An empty comm keeps tct-closer.
func RunAs(ns *Namespace, name, family, comm string) (*Result, error) {
	return run(ns, name, family, comm, nil)
}

// RunPaused is Run with pause called where the scenario's sockets exist and
// nothing has happened to them yet (only old_socket has such a point;
// elsewhere pause is not called): a tracer started by pause finds sockets
// older than itself. An error from pause fails the run.
func RunPaused(ns *Namespace, name, family string, pause func() error) (*Result, error) {
	return run(ns, name, family, "", pause)
}

func run(ns *Namespace, name, family, comm string, pause func() error) (*Result, error) {
	fn, ok := scenarios[name]
	if !ok {
		if name == "mixed" {
			return nil, errors.New("scenario mixed: use RunMixed")
		}
		return nil, fmt.Errorf("unknown scenario %q", name)
	}
	r, err := drive(ns, name, family, runTimeout, func(d *driver) *Result {
		d.closerComm, d.pause = comm, pause
		return fn(d)
	})
	if err != nil {
		return nil, err
	}
	r.Name, r.Family = name, family
	return r, nil
}

// drive runs script, with helpers in ns for scenario name in family, for at
// most timeout, and returns what it returns once the helpers are done. A
// script that fails returns nil (d.err says why).
func drive[R any](ns *Namespace, name, family string, timeout time.Duration, script func(d *driver) *R) (*R, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scaled(timeout))
	defer cancel()
	d, err := newDriver(ctx, ns, name, family)
	if err != nil {
		return nil, fmt.Errorf("scenario %s/%s: %w", name, family, err)
	}
	r := script(d)
	if r != nil {
		d.finish()
	}
	d.cleanup()
	if r == nil || d.err != nil {
		return nil, fmt.Errorf("scenario %s/%s: %w", name, family, d.err)
	}
	return r, nil
}

// unreadClose: the closer accepts, the peer sends 1234 bytes, the closer
// closes without reading them: the kernel aborts with a reset.
func unreadClose(d *driver) *Result { return unreadCloseVia(d, "close S", nil, nil) }

// oldSocket: unread_close on sockets older than the tracer (RunPaused
// starts it once the connection is up and the peer's data is queued): the
// closer closes a socket it has not used since, and the peer's socket,
// also older, is reset.
func oldSocket(d *driver) *Result {
	return unreadCloseVia(d, "close S", d.checkpoint, nil)
}

// callSite: unread_close, the close made by the closer's function
// closeWithoutDraining (see CallSite), for the stacks to name. Not in
// Names: it proves what --stacks shows, not a detection.
func callSite(d *driver) *Result {
	// A Go binary has no build id the kernel reads: its frames are
	// addresses, resolved through the live process's mappings. The closer
	// lives on a while, as a server would.
	return unreadCloseVia(d, "closewithoutdraining S", nil, func(c *helper) { d.do(c, "sleep 300") })
}

// WorkerThread is the name of the closer's thread that closes in
// worker_thread.
const WorkerThread = "tct-worker"

// workerThread: unread_close, but the close is made by a thread of the
// closer other than its main thread, named WorkerThread (as a JVM's
// handler threads are): the event names the process and the thread.
func workerThread(d *driver) *Result {
	return unreadCloseVia(d, "thread "+WorkerThread+" close S", nil, nil)
}

// unreadCloseVia is unread_close with the closer's close made by the helper
// command closeCmd; before runs once the connection is up and the data
// queued, after right after the close (each if not nil).
func unreadCloseVia(d *driver, closeCmd string, before func(), after func(c *helper)) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport, pport := d.link(c, p, 0)
	d.do(p, "write S %d", unreadBytes)
	d.do(c, "waitinq S %d", unreadBytes)
	if before != nil {
		before()
	}
	d.do(c, "%s", closeCmd)
	if after != nil {
		after(c)
	}
	peerSeesReset(d, p)
	d.do(c, "close L")
	return &Result{Closer: c.proc, Peer: p.proc, CloserPort: lport, PeerPort: pport, UnreadBytes: unreadBytes}
}

// undrained: the closer connects and closes without reading (the peer has
// sent nothing yet); once its orphaned socket sits in FIN_WAIT2 the peer
// sends 100 bytes, which the orphan (a full socket, or a TIME_WAIT
// mini-socket when wantMini) answers with a reset.
//
// The closer lingers (SO_LINGER {1, 5}), so close() returns only once the
// peer has acked the FIN. Without it, at tcp_fin_timeout <= 60 the kernel
// races: an ACK that lands between tcp_close()'s last backlog pass and its
// release_sock() is processed while the socket is still owned, and the
// orphan then stays a full FIN_WAIT2 socket (keepalive timer set to
// tcp_fin_timeout) instead of becoming a mini-socket, so the data gets
// TCP_ABORT_ON_DATA. RunMixed uses plain close() and classifies each orphan.
func undrained(d *driver, wantMini bool) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport, cport := d.link(p, c, 0)
	d.do(c, "linger S %d", undrainedLinger)
	d.do(c, "close S")
	d.readAll(p, 0, "EOF")
	mini := d.waitFinWait2(cport, lport)
	if d.err == nil && mini != wantMini {
		if mini {
			d.fail(fmt.Errorf("closer's orphan became a TIME_WAIT mini-socket: set net.ipv4.tcp_fin_timeout above 60"))
		} else {
			d.fail(fmt.Errorf("closer's orphan stayed a full FIN_WAIT2 socket: set net.ipv4.tcp_fin_timeout to 60 or less"))
		}
	}
	d.do(p, "write S %d", refusedBytes)
	d.do(p, "waitclosed S")
	// The reset moved the peer's socket from CLOSE_WAIT to CLOSE with error
	// EPIPE, but the FIN seen before makes read report EOF.
	d.readAll(p, 0, "EOF")
	d.do(p, "close S")
	d.do(p, "close L")
	return &Result{Closer: c.proc, Peer: p.proc, CloserPort: cport, PeerPort: lport, RefusedBytes: refusedBytes}
}

// undrainedQuiet: the closer connects and closes without reading, and the
// peer, which has sent nothing, reads the EOF and closes too: an undrained
// close that no data follows, harmless (on real servers the commonest
// close: HTTP/1.0 answers, keep-alive clients that exit). No reset.
func undrainedQuiet(d *driver) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport, cport := d.link(p, c, 0)
	d.do(c, "close S")
	d.readAll(p, 0, "EOF")
	d.do(p, "close S")
	d.do(p, "close L")
	return &Result{Closer: c.proc, Peer: p.proc, CloserPort: cport, PeerPort: lport}
}

// lingerZero: the closer fills its send buffer towards a peer that does not
// read, then closes with SO_LINGER {1, 0}: a reset, the queue dropped.
func lingerZero(d *driver) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport, cport := d.link(p, c, smallBuf)
	d.do(c, "sndbuf S %d", smallBuf)
	d.do(c, "fill S")
	d.do(c, "sleep 50")
	// Everything sent must be acked, so the reset carries the sequence
	// number the peer expects, and the peer's window closed, so nothing
	// moves before the close: what is left in the queue is unsent.
	d.do(c, "waitstalled S")
	unsent := d.num(c, "outq S")
	if d.err == nil && unsent <= 0 {
		d.fail(fmt.Errorf("closer has %d bytes queued, want some", unsent))
	}
	d.do(c, "linger S 0")
	d.do(c, "close S")
	d.do(p, "waitclosed S")
	d.readAll(p, -1, "ECONNRESET")
	d.do(p, "close S")
	d.do(p, "close L")
	return &Result{Closer: c.proc, Peer: p.proc, CloserPort: cport, PeerPort: lport, UnsentBytes: uint32(unsent)}
}

// graceful: both ends shut down in order; no reset anywhere.
func graceful(d *driver) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport := d.port(p, "listen L 0")
	cport := gracefulExchange(d, c, p, lport)
	d.do(p, "close L")
	return &Result{Closer: c.proc, Peer: p.proc, CloserPort: cport, PeerPort: lport}
}

// unreadExchange runs one connection from p to c's listener on lport in
// which p sends n bytes that c never reads before close(): the kernel
// resets, and p sees it. It returns p's local port.
func unreadExchange(d *driver, c, p *helper, lport uint16, n int) uint16 {
	pport := d.connect(p, lport, "OK")
	d.accept(c, pport)
	d.do(p, "write S %d", n)
	d.do(c, "waitinq S %d", n)
	d.do(c, "close S")
	peerSeesReset(d, p)
	return pport
}

// peerSeesReset waits until p's socket S was reset, checks that a read
// reports ECONNRESET with no data, and closes it.
func peerSeesReset(d *driver, p *helper) {
	d.do(p, "waitclosed S")
	d.readAll(p, 0, "ECONNRESET")
	d.do(p, "close S")
}

// gracefulExchange runs one orderly connection from c to p's listener on
// lport: c sends, shuts down its side, drains to EOF; p drains, replies and
// closes. It returns c's local port.
func gracefulExchange(d *driver, c, p *helper, lport uint16) uint16 {
	cport := d.connect(c, lport, "OK")
	d.accept(p, cport)
	d.do(c, "write S %d", gracefulBytes)
	d.do(c, "shutwr S")
	d.readAll(p, gracefulBytes, "EOF")
	d.do(p, "write S %d", gracefulReply)
	d.do(p, "close S")
	d.readAll(c, gracefulReply, "EOF")
	d.do(c, "close S")
	return cport
}

// closedPort: the closer connects to a port nothing listens on; the kernel
// answers the SYN with a socket-less reset.
func closedPort(d *driver) *Result {
	c := d.start(roleCloser)
	port := d.port(c, "freeport")
	cport := d.connect(c, port, "ECONNREFUSED")
	d.do(c, "close S")
	return &Result{Closer: c.proc, CloserPort: cport, PeerPort: port}
}

// peerReset: the closer reads what the peer sent, then resets the live
// connection with SO_LINGER {1, 0}.
func peerReset(d *driver) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport, pport := d.link(c, p, 0)
	d.do(p, "write S %d", resetBytes)
	d.do(c, "read S %d", resetBytes)
	d.do(c, "linger S 0")
	d.do(c, "close S")
	peerSeesReset(d, p)
	d.do(c, "close L")
	return &Result{Closer: c.proc, Peer: p.proc, CloserPort: lport, PeerPort: pport}
}

// handoff: the peer listens and accepts, and hands the accepted socket over
// to the closer (as a server's acceptor hands connections to workers) before
// anyone uses it; the closer reads from it, then resets the connection from
// its other end (SO_LINGER {1, 0}). The reset the accepted socket receives
// belongs to the closer, its first user, not to the listener's owner.
func handoff(d *driver) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport, cport := d.link(p, c, 0)
	fd := d.num(p, "fd S")
	d.do(c, "grab T %d %d", p.proc.PID, fd)
	d.do(p, "close S") // the closer's copy keeps the socket open
	d.do(p, "close L")
	d.do(c, "write S %d", resetBytes)
	d.do(c, "read T %d", resetBytes)
	d.do(c, "linger S 0")
	d.do(c, "close S")
	d.do(c, "waitclosed T")
	d.readAllOf(c, "T", 0, "ECONNRESET")
	d.do(c, "close T")
	return &Result{Closer: c.proc, Peer: p.proc, CloserPort: cport, PeerPort: lport}
}

// uploadRefused: a server refuses an upload. The peer uploads a large body
// in many writes to the closer's server socket, whose small receive buffer
// stalls it (window zero, everything sent acked). The closer reads what
// arrived and closes with nothing unread while the peer still has most of
// the body queued. The closer's FIN reopens the window: the peer's next
// segment carries body data and acknowledges that FIN, so the orphan in
// FIN_WAIT1 aborts at once (tcp_done, TCPAbortOnData, a reset with reason
// TCP_ABORT_ON_DATA) without tcp_reset().
//
// shutdown(SHUT_RD) before the read keeps the kernel from announcing the
// freed space in a window update before the FIN: the segment could then
// arrive before the close, unread. The peer's zero-window probes come
// hundreds of milliseconds apart, and drainclose closes at once after the
// read.
func uploadRefused(d *driver) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport, pport := d.link(c, p, smallBuf)
	d.do(p, "fill S")
	d.do(p, "waitstalled S")
	d.do(c, "shutrd S")
	capt, err := d.ns.openCapture()
	if err != nil {
		d.fail(err)
		return nil
	}
	defer capt.close()
	before := d.num(p, "sent S")
	d.do(c, "drainclose S")
	d.do(p, "waitclosed S")
	after := d.num(p, "sent S")
	// The FIN came before the reset: read reports EOF.
	d.readAll(p, 0, "EOF")
	d.do(p, "close S")
	r := &Result{Closer: c.proc, Peer: p.proc, CloserPort: lport, PeerPort: pport}
	if d.err == nil {
		segs, err := capt.readQuiet(quietWire, scaled(helperPoll))
		if err != nil {
			d.fail(err)
		} else if err := r.refused(segs, after-before); err != nil {
			d.fail(err)
		}
	}
	d.do(c, "close L")
	return r
}

// refused reads upload_refused's outcome from the wire: the peer's data
// after the closer's FIN (sent bytes in all), the first segment refused by
// the aborting socket, and the closer's resets: that one's, then the
// listener's.
func (r *Result) refused(segs []segment, sent int) error {
	c, p := r.CloserPort, r.PeerPort
	fin := -1
	var data []int
	rsts := 0
	for i, s := range segs {
		switch {
		case fin < 0 && s.sport == c && s.dport == p && s.flags&tcpFlagFIN != 0:
			fin = i
		case fin < 0:
		case s.sport == p && s.dport == c && s.payload > 0:
			data = append(data, s.payload)
		case s.sport == c && s.dport == p && s.flags&tcpFlagRST != 0:
			rsts++
		}
	}
	total := 0
	for _, n := range data {
		total += n
	}
	switch {
	case fin < 0:
		return errors.New("closer's FIN not seen on the wire")
	case len(data) == 0:
		return errors.New("peer sent no data after the closer's FIN")
	case total != sent:
		return fmt.Errorf("peer's data after the FIN %v, but its bytes_sent grew by %d", data, sent)
	case rsts < 1 || rsts > len(data):
		return fmt.Errorf("%d resets for the peer's %d segments after the FIN", rsts, len(data))
	}
	r.RefusedBytes, r.ListenerResets = uint32(data[0]), rsts-1
	return nil
}

// shutdownUnread: the closer never writes; the peer sends 1234 bytes; the
// closer shuts down its sending side and closes at once with them unread
// (what Java's Socket.close() does). Its FIN, queued and not yet acked, is
// no unsent data.
func shutdownUnread(d *driver) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport, pport := d.link(c, p, 0)
	d.do(p, "write S %d", unreadBytes)
	d.do(c, "waitinq S %d", unreadBytes)
	capt, err := d.ns.openCapture()
	if err != nil {
		d.fail(err)
		return nil
	}
	defer capt.close()
	d.do(c, "shutclose S")
	d.do(p, "waitclosed S")
	// The FIN came before the reset: read reports EOF.
	d.readAll(p, 0, "EOF")
	d.do(p, "close S")
	r := &Result{Closer: c.proc, Peer: p.proc, CloserPort: lport, PeerPort: pport, UnreadBytes: unreadBytes}
	if d.err == nil {
		segs, err := capt.readQuiet(quietWire, scaled(helperPoll))
		if err != nil {
			d.fail(err)
		} else if r.ListenerResets, err = r.listenerResets(segs); err != nil {
			d.fail(err)
		}
	}
	d.do(c, "close L")
	return r
}

// listenerResets counts the closer's resets on the wire beyond the abort's
// own: the peer's ACK of the FIN that shutdown() sent is usually processed
// before close(), but where softirqs run late (seen under emulation) it
// reaches the listener after the abort, which answers it with a reset.
func (r *Result) listenerResets(segs []segment) (int, error) {
	rsts := 0
	for _, s := range segs {
		if s.sport == r.CloserPort && s.dport == r.PeerPort && s.flags&tcpFlagRST != 0 {
			rsts++
		}
	}
	if rsts < 1 {
		return 0, errors.New("the closer's reset not seen on the wire")
	}
	return rsts - 1, nil
}

// halfOpen: the peer holds a connection to the closer's listening port
// that the closer's side does not have (made with TCP_REPAIR, as after a
// server's socket aborted with the client's segments still in flight). The
// peer's segment reaches the listener, which answers with a reset.
func halfOpen(d *driver) *Result {
	c, p := d.start(roleCloser), d.start(rolePeer)
	lport := d.port(c, "listen L 0")
	pport := d.port(p, "halfopen S %d", lport)
	d.do(p, "waitclosed S")
	d.readAll(p, 0, "ECONNRESET")
	d.do(p, "close S")
	d.do(c, "close L")
	return &Result{Closer: c.proc, Peer: p.proc, CloserPort: lport, PeerPort: pport}
}

const optmemMax = "net.core.optmem_max"

// Supports returns nil if the kernel can run scenario name in n, else an
// error wrapping ErrUnsupported that says why.
func (n *Namespace) Supports(name string) error {
	if name != "no_storage" {
		return nil
	}
	if _, err := n.sysctlValue(optmemMax); err != nil {
		return fmt.Errorf("%w: %s is not per network namespace: %v", ErrUnsupported, optmemMax, err)
	}
	return nil
}

// noStorage: unread_close with net.core.optmem_max 0 in the namespace, so
// that the kernel refuses every socket's BPF storage (it is charged to the
// socket's option memory): the tracer must count and stream the close all
// the same. Needs the sysctl per namespace (Linux 6.9+).
func noStorage(d *driver) *Result {
	old, err := d.ns.sysctlValue(optmemMax)
	if err != nil {
		d.fail(fmt.Errorf("%w: %s is not per network namespace: %v", ErrUnsupported, optmemMax, err))
		return nil
	}
	const key = optmemMax
	if err := d.ns.Sysctl(key, "0"); err != nil {
		d.fail(err)
		return nil
	}
	defer func() {
		if err := d.ns.Sysctl(key, old); err != nil {
			d.fail(err)
		}
	}()
	return unreadClose(d)
}

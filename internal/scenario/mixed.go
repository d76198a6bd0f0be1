package scenario

import (
	"fmt"
	"time"
)

// MaxMixed is the largest number of connections RunMixed accepts.
const MaxMixed = 10000

// mixedTimeout bounds one RunMixed.
const mixedTimeout = 60 * time.Second

// Mixed pattern names, the keys of MixedResult.Count. An undrained
// connection counts as undrained_fin_wait or undrained_time_wait depending
// on what the closer's orphan turned out to be (see tcp_fin_timeout).
const (
	MixedUnread       = "unread_close"
	MixedFinWait      = "undrained_fin_wait"
	MixedTimeWait     = "undrained_time_wait"
	MixedLingerZero   = "linger_zero"
	MixedGraceful     = "graceful"
	MixedClosedPort   = "closed_port"
	mixedPatternCount = 5
)

// MixedResult is what RunMixed did: per-pattern connection counts and exact
// byte totals.
type MixedResult struct {
	Closer, Peer Proc
	// Count is connections per pattern; every pattern key is present.
	Count map[string]int
	// UnreadBytes is the sum of bytes unread at close over unread_close.
	UnreadBytes uint64
	// RefusedBytes is the sum of bytes the peer sent after the close over
	// the undrained connections.
	RefusedBytes uint64
	// GracefulPorts are the closer's ports of the graceful connections, in
	// order, and PeerPort the peer's listening port they connected to: a
	// count that falls short names the connection whose close went missing.
	GracefulPorts []uint16
	// UndrainedPorts are the closer's ports of the undrained connections,
	// in order, for the same purpose.
	UndrainedPorts []uint16
	PeerPort       uint16
}

// RunMixed runs n connections (1 to MaxMixed, within 60 s times the time
// scale, see EnvTimeScale) between one tct-closer and one tct-peer helper
// inside ns, one at a time, cycling through unread_close (1 to 4000 unread bytes), undrained (plain close(),
// then 1 to 1000 bytes sent after it; the peer sets TCP_QUICKACK to ack the
// FIN at once), linger_zero (nothing unsent), graceful and closed_port.
// It returns once both helpers exited and no full socket is left.
//
// Expected kernel counter deltas: TcpExtTCPAbortOnClose = unread_close,
// TcpExtTCPAbortOnData = linger_zero + undrained_fin_wait, TcpOutRsts = all
// but graceful, TcpEstabResets = 2*unread_close + 2*linger_zero + undrained.
func RunMixed(ns *Namespace, family string, n int) (*MixedResult, error) {
	if n < 1 || n > MaxMixed {
		return nil, fmt.Errorf("mixed: n %d out of range 1..%d", n, MaxMixed)
	}
	return drive(ns, "mixed", family, mixedTimeout, func(d *driver) *MixedResult { return runMixed(d, n) })
}

func runMixed(d *driver, n int) *MixedResult {
	c, p := d.start(roleCloser), d.start(rolePeer)
	r := &MixedResult{Count: map[string]int{MixedUnread: 0, MixedFinWait: 0, MixedTimeWait: 0,
		MixedLingerZero: 0, MixedGraceful: 0, MixedClosedPort: 0}}
	clport := d.port(c, "listen L 0") // for unread_close, where the closer accepts
	plport := d.port(p, "listen L 0") // for the others
	free := d.port(c, "freeport")
	for i := 0; i < n && d.err == nil; i++ {
		switch i % mixedPatternCount {
		case 0:
			unread := 1 + (i*7919)%4000
			unreadExchange(d, c, p, clport, unread)
			r.Count[MixedUnread]++
			r.UnreadBytes += uint64(unread)
		case 1:
			refused := 1 + (i*104729)%1000
			cport := d.connect(c, plport, "OK")
			d.accept(p, cport)
			d.do(c, "close S")
			d.readAll(p, 0, "EOF")
			d.do(p, "quickack S") // ack the FIN now, not after the delayed-ACK timer
			mini := d.waitFinWait2(cport, plport)
			d.do(p, "write S %d", refused)
			d.do(p, "waitclosed S")
			d.do(p, "close S")
			r.UndrainedPorts = append(r.UndrainedPorts, cport)
			if mini {
				r.Count[MixedTimeWait]++
			} else {
				r.Count[MixedFinWait]++
			}
			r.RefusedBytes += uint64(refused)
		case 2:
			cport := d.connect(c, plport, "OK")
			d.accept(p, cport)
			d.do(c, "linger S 0")
			d.do(c, "close S")
			peerSeesReset(d, p)
			r.Count[MixedLingerZero]++
		case 3:
			r.GracefulPorts = append(r.GracefulPorts, gracefulExchange(d, c, p, plport))
			r.Count[MixedGraceful]++
		case 4:
			d.connect(c, free, "ECONNREFUSED")
			d.do(c, "close S")
			r.Count[MixedClosedPort]++
		}
	}
	d.do(c, "close L")
	d.do(p, "close L")
	r.Closer, r.Peer, r.PeerPort = c.proc, p.proc, plport
	return r
}

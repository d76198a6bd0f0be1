package scenario

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpFinWait1    = 4
	tcpFinWait2    = 5
	tcpTimeWait    = 6
	tcpClose       = 7
)

// Values of inet_diag_msg.idiag_timer: the keepalive timer (which is also
// the FIN_WAIT2 timer of an orphan) is pending, or this is a TIME_WAIT
// mini-socket.
const (
	diagTimerKeepalive = 2
	diagTimerTimeWait  = 3
)

// Sizes of struct inet_diag_req_v2 and struct inet_diag_msg.
const (
	diagReqLen = 56
	diagMsgLen = 72
)

// diagSock is one socket as sock_diag reports it.
type diagSock struct {
	family       uint8
	state        uint8
	timer        uint8
	sport, dport uint16
	expires      uint32 // ms until the timer fires
}

// miniSocket reports whether the socket is a TIME_WAIT mini-socket (whatever
// its substate, FIN_WAIT2 or TIME_WAIT) rather than a full socket.
func (d diagSock) miniSocket() bool { return d.timer == diagTimerTimeWait }

// diagSocket returns the namespace's sock_diag socket, opening it inside the
// namespace the first time. n.mu must be held.
func (n *Namespace) diagSocket() (int, error) {
	if n.diagFD >= 0 {
		return n.diagFD, nil
	}
	fd := -1
	err := n.inNamespace(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
		return err
	})
	if err != nil {
		return -1, fmt.Errorf("sock_diag socket in netns %s: %w", n.Name, err)
	}
	tv := unix.Timeval{Sec: 2}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("sock_diag socket timeout: %w", err)
	}
	n.diagFD = fd
	return fd, nil
}

// diagRequest builds a SOCK_DIAG_BY_FAMILY request for TCP sockets of af.
// With dump false it asks for the one socket whose local end is
// loopback:sport and remote end loopback:dport.
func diagRequest(af int, states uint32, dump bool, sport, dport uint16, seq uint32) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN+diagReqLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	flags := uint16(unix.NLM_F_REQUEST)
	if dump {
		flags |= unix.NLM_F_DUMP
	}
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seq)
	r := b[unix.NLMSG_HDRLEN:]
	r[0] = uint8(af)
	r[1] = unix.IPPROTO_TCP
	ne.PutUint32(r[4:], states)
	id := r[8:]
	binary.BigEndian.PutUint16(id[0:], sport)
	binary.BigEndian.PutUint16(id[2:], dport)
	if !dump {
		lo := loopback(af)
		copy(id[4:20], lo)  // src
		copy(id[20:36], lo) // dst
	}
	// id[36:40] is the interface (any); the cookie must be INET_DIAG_NOCOOKIE.
	ne.PutUint32(id[40:], ^uint32(0))
	ne.PutUint32(id[44:], ^uint32(0))
	return b
}

func loopback(af int) []byte {
	if af == unix.AF_INET6 {
		return []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}
	}
	return []byte{127, 0, 0, 1}
}

var diagSeq atomic.Uint32

// diagQuery sends one request and collects the sockets in the answer.
// A lookup of a socket that does not exist returns no sockets and no error.
func (n *Namespace) diagQuery(req []byte, dump bool) ([]diagSock, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fd, err := n.diagSocket()
	if err != nil {
		return nil, err
	}
	seq := binary.NativeEndian.Uint32(req[8:])
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag send: %w", err)
	}
	var socks []diagSock
	buf := make([]byte, 64<<10)
	for range 10000 { // bounded: a dump of a test namespace is a few messages
		nr, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag receive: %w", err)
		}
		msgs, err := parseNetlink(buf[:nr])
		if err != nil {
			return nil, fmt.Errorf("sock_diag parse: %w", err)
		}
		for _, m := range msgs {
			if m.seq != seq {
				continue // a late answer to an earlier request
			}
			switch m.typ {
			case unix.NLMSG_DONE:
				return socks, nil
			case unix.NLMSG_ERROR:
				if len(m.data) < 4 {
					return nil, errors.New("sock_diag: short error message")
				}
				errno := unix.Errno(-int32(binary.NativeEndian.Uint32(m.data)))
				if errno == 0 {
					return socks, nil
				}
				if errno == unix.ENOENT && !dump {
					return nil, nil
				}
				return nil, fmt.Errorf("sock_diag: %w", errno)
			case unix.SOCK_DIAG_BY_FAMILY:
				if len(m.data) < diagMsgLen {
					return nil, errors.New("sock_diag: short inet_diag_msg")
				}
				d := m.data
				socks = append(socks, diagSock{
					family: d[0], state: d[1], timer: d[2],
					sport:   binary.BigEndian.Uint16(d[4:]),
					dport:   binary.BigEndian.Uint16(d[6:]),
					expires: binary.NativeEndian.Uint32(d[52:]),
				})
				if !dump {
					return socks, nil
				}
			}
		}
	}
	return nil, errors.New("sock_diag: answer did not end")
}

func (n *Namespace) nextSeq() uint32 { return diagSeq.Add(1) }

// lookup returns the TCP socket (full or TIME_WAIT) with local end
// loopback:sport and remote end loopback:dport, or ok false if there is none.
func (n *Namespace) lookup(af int, sport, dport uint16) (d diagSock, ok bool, err error) {
	socks, err := n.diagQuery(diagRequest(af, ^uint32(0), false, sport, dport, n.nextSeq()), false)
	if err != nil || len(socks) == 0 {
		return diagSock{}, false, err
	}
	return socks[0], true, nil
}

// waitOrphanFinWait2 polls until the orphaned socket loopback:sport ->
// loopback:dport has had its FIN acked and settled: either a TIME_WAIT
// mini-socket in substate FIN_WAIT2, or a full FIN_WAIT2 socket whose
// FIN_WAIT2 timer (the keepalive timer) is armed. A full socket seen in
// FIN_WAIT2 without that timer is still being processed (it may become a
// mini-socket the next moment) and is polled again.
func (n *Namespace) waitOrphanFinWait2(ctx context.Context, af int, sport, dport uint16) (diagSock, error) {
	var last diagSock
	var found bool
	for {
		d, ok, err := n.lookup(af, sport, dport)
		if err != nil {
			return diagSock{}, err
		}
		if ok && d.state == tcpFinWait2 && (d.miniSocket() || d.timer == diagTimerKeepalive) {
			return d, nil
		}
		last, found = d, ok
		select {
		case <-ctx.Done():
			if !found {
				return diagSock{}, fmt.Errorf("wait for orphan :%d->:%d in FIN_WAIT2: socket gone: %w", sport, dport, ctx.Err())
			}
			return diagSock{}, fmt.Errorf("wait for orphan :%d->:%d in FIN_WAIT2: state %d timer %d: %w", sport, dport, last.state, last.timer, ctx.Err())
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// fullSockets lists every TCP socket in the namespace that is not a TIME_WAIT
// mini-socket.
func (n *Namespace) fullSockets() ([]diagSock, error) {
	states := ^uint32(0) &^ (1 << tcpTimeWait)
	var all []diagSock
	for _, af := range []int{unix.AF_INET, unix.AF_INET6} {
		socks, err := n.diagQuery(diagRequest(af, states, true, 0, 0, n.nextSeq()), true)
		if err != nil {
			return nil, err
		}
		all = append(all, socks...)
	}
	return all, nil
}

// waitSettled waits until no full TCP socket is left in the namespace, so
// that no more counters can move.
func (n *Namespace) waitSettled(ctx context.Context) error {
	for {
		socks, err := n.fullSockets()
		if err != nil {
			return err
		}
		if len(socks) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sockets left in netns %s: %v: %w", n.Name, socks, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// netlinkMsg is one message of a netlink answer.
type netlinkMsg struct {
	typ  uint16
	seq  uint32
	data []byte
}

// parseNetlink splits a netlink datagram into its messages.
func parseNetlink(b []byte) ([]netlinkMsg, error) {
	var msgs []netlinkMsg
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, fmt.Errorf("bad message length %d", l)
		}
		msgs = append(msgs, netlinkMsg{
			typ:  binary.NativeEndian.Uint16(b[4:]),
			seq:  binary.NativeEndian.Uint32(b[8:]),
			data: b[unix.NLMSG_HDRLEN:l],
		})
		l = (l + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1)
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return msgs, nil
}

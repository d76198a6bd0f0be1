package scenario

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// segment is one TCP segment seen on lo.
type segment struct {
	sport, dport uint16
	flags        uint8
	payload      int
}

// TCP header flags.
const (
	tcpFlagFIN = 0x01
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
)

// capture is a packet socket on the namespace's loopback.
type capture struct{ fd int }

// openCapture opens a packet socket on the namespace's loopback: every
// packet from then on, until close, is kept (up to 4 MiB) for read.
func (n *Namespace) openCapture() (*capture, error) {
	proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8) // network byte order
	fd := -1
	err := n.inNamespace(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	c := &capture{fd: fd}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20); err != nil {
		c.close()
		return nil, fmt.Errorf("packet socket SO_RCVBUF: %w", err)
	}
	// A fresh namespace has only lo, index 1.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: 1}); err != nil {
		c.close()
		return nil, fmt.Errorf("bind packet socket: %w", err)
	}
	return c, nil
}

func (c *capture) close() error { return unix.Close(c.fd) }

// read returns the TCP segments received since the last read (each
// loopback packet is seen twice; only the receiving side is kept).
func (c *capture) read() ([]segment, error) {
	var segs []segment
	buf := make([]byte, 70000)
	for range 100000 {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err == unix.EAGAIN {
			return segs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		p := buf[:n]
		var l4 []byte
		switch {
		case len(p) >= 20 && p[0]>>4 == 4 && p[9] == unix.IPPROTO_TCP:
			ihl := int(p[0]&0xf) * 4
			total := int(p[2])<<8 | int(p[3])
			l4 = p[ihl:min(total, len(p))]
		case len(p) >= 40 && p[0]>>4 == 6 && p[6] == unix.IPPROTO_TCP:
			plen := int(p[4])<<8 | int(p[5])
			l4 = p[40:min(40+plen, len(p))]
		default:
			continue
		}
		if len(l4) < 20 {
			return nil, errors.New("capture: short TCP header")
		}
		segs = append(segs, segment{
			sport:   uint16(l4[0])<<8 | uint16(l4[1]),
			dport:   uint16(l4[2])<<8 | uint16(l4[3]),
			flags:   l4[13],
			payload: len(l4) - int(l4[12]>>4)*4,
		})
	}
	return nil, errors.New("capture: too many packets")
}

// quietWire is how long the wire must stay silent for readQuiet.
const quietWire = 200 * time.Millisecond

// readQuiet reads segments until none came for quiet (at most for limit),
// and returns them all.
func (c *capture) readQuiet(quiet, limit time.Duration) ([]segment, error) {
	var all []segment
	deadline := time.Now().Add(limit)
	last := time.Now()
	for {
		segs, err := c.read()
		if err != nil {
			return nil, err
		}
		if len(segs) > 0 {
			all = append(all, segs...)
			last = time.Now()
		}
		now := time.Now()
		if now.Sub(last) >= quiet {
			return all, nil
		}
		if now.After(deadline) {
			return nil, fmt.Errorf("capture: the wire did not go quiet within %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

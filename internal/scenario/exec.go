package scenario

import (
	"context"
	"fmt"
	"os/exec"
	"time"
)

// tcpListen is TCP_LISTEN in include/net/tcp_states.h.
const tcpListen = 10

// Command returns a command that runs name with args inside the namespace
// (through ip netns exec, which execs the program: the process started is
// the program itself). ctx bounds its run as in exec.CommandContext.
func (n *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// WaitListening polls until a TCP socket of family ("ipv4" or "ipv6")
// listens on port in the namespace, without sending it any traffic.
func (n *Namespace) WaitListening(ctx context.Context, family string, port uint16) error {
	af, err := familyAF(family)
	if err != nil {
		return err
	}
	for {
		socks, err := n.diagQuery(diagRequest(af, 1<<tcpListen, true, 0, 0, n.nextSeq()), true)
		if err != nil {
			return err
		}
		for _, s := range socks {
			if s.sport == port && int(s.family) == af {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a %s listener on port %d in netns %s: %w", family, port, n.Name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// WaitConnectionsGone polls until the namespace holds no full TCP socket but
// listeners (TIME_WAIT mini-sockets may remain), so that the connections of
// a test can no longer move its counters.
func (n *Namespace) WaitConnectionsGone(ctx context.Context) error {
	for {
		socks, err := n.fullSockets()
		if err != nil {
			return err
		}
		var left []diagSock
		for _, s := range socks {
			if s.state != tcpListen {
				left = append(left, s)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connections left in netns %s: %+v: %w", n.Name, left, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

package scenario

import (
	"fmt"
	"time"
)

// MaxStorm bounds the connections of one RunStorm.
const MaxStorm = 100000

// stormTimeout bounds one RunStorm, helpers' start and exit included.
const stormTimeout = 60 * time.Second

// StormResult is what RunStorm did.
type StormResult struct {
	Closer Proc   // the process whose connections were refused
	Port   uint16 // the port nothing listened on
	Conns  int    // connections refused
}

// RunStorm makes n connections, as fast as one process can, to a port of
// ns that nothing listens on (127.0.0.1 or ::1): each SYN is answered by a
// reset with no socket (reset_sent NO_SOCKET) that the client receives
// (reset_received), as in a port scan or a client hammering a server that
// is down.
func RunStorm(ns *Namespace, family string, n int) (*StormResult, error) {
	if n < 1 || n > MaxStorm {
		return nil, fmt.Errorf("storm: n %d out of range 1..%d", n, MaxStorm)
	}
	return drive(ns, "storm", family, stormTimeout, func(d *driver) *StormResult {
		c := d.start(roleCloser)
		port := d.port(c, "freeport")
		d.do(c, "refused %d %d", port, n)
		return &StormResult{Closer: c.proc, Port: port, Conns: n}
	})
}

package collector

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
)

// StormSource is where suppressed events came from: how many events of a
// kind (and, for reset_sent, reason) between one remote address and one
// service port were not streamed since the last StormSources.
type StormSource struct {
	Kind   Kind
	Reason string // reset_sent only
	RAddr  netip.Addr
	// Port names the service: for reset_sent the local port the segments
	// came to; for the other kinds the lower of the two ports (a
	// client's ephemeral port is the higher, mostly).
	Port  uint16
	Count uint64
}

// budgetPerCPU splits the budget per kind over the CPUs that may run the
// programs, rounding up so that a budget is never 0 per CPU.
func budgetPerCPU(budget int) uint32 {
	if budget <= 0 {
		return 0
	}
	cpus, err := ebpf.PossibleCPU()
	if err != nil || cpus < 1 {
		cpus = 1
	}
	return uint32(min((budget+cpus-1)/cpus, math.MaxUint32))
}

// StormSources returns the sources of the events suppressed since the last
// call, largest first. The kernel's table is cumulative and holds at most
// 1024 sources; in a storm of more, the least recent make room, so counts
// here are a lower bound (the exact totals are in Counters.Suppressed).
// Not safe for concurrent use.
func (c *Collector) StormSources() ([]StormSource, error) {
	m := c.coll.Maps[bpf.TcpcloseMapStorm]
	var (
		key   bpf.TcpcloseStormKey
		count uint64
		out   []StormSource
	)
	seen := make(map[bpf.TcpcloseStormKey]uint64, len(c.stormSeen))
	it := m.Iterate()
	for it.Next(&key, &count) {
		seen[key] = count
		prev, ok := c.stormSeen[key]
		if ok && prev <= count {
			count -= prev // else the source was evicted and counted anew
		}
		if count == 0 {
			continue
		}
		s := StormSource{Kind: Kind(key.Kind), RAddr: addr(key.Family, &key.Raddr), Port: key.Port, Count: count}
		if s.Kind == KindResetSent {
			s.Reason = "unknown"
			if int(key.Reason) < ReasonUnknownSlot {
				s.Reason = c.decoder.Reasons.Name(key.Reason)
			}
		}
		out = append(out, s)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read storm sources: %w", err)
	}
	c.stormSeen = seen
	slices.SortFunc(out, func(a, b StormSource) int { return cmp.Compare(b.Count, a.Count) })
	return out, nil
}

package collector

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
)

// NumReasonSlots is how many reset reasons the kernel counts; the last slot
// counts resets whose reason is unknown (kernels before 6.10, or out of
// range). bpf/tcpclose.c, enum reason_slot.
const NumReasonSlots = int(bpf.TcpcloseReasonSlotNR_REASONS)

// ReasonUnknownSlot is the slot of resets with no known reason.
const ReasonUnknownSlot = int(bpf.TcpcloseReasonSlotREASON_UNKNOWN)

// HistBuckets is the number of unread-bytes histogram buckets: bucket i
// counts closes with unread bytes below 2^i (and at least 2^(i-1)).
const HistBuckets = len(bpf.TcpcloseCounts{}.UnreadHist)

// The totals have the shape of the kernel's struct counts: these compile
// only while the arrays have the same lengths.
var (
	_ [len(bpf.TcpcloseCounts{}.Kinds)]uint64             = Counters{}.Kinds
	_ [len(bpf.TcpcloseCounts{}.Suppressed)]uint64        = Counters{}.Suppressed
	_ [len(bpf.TcpcloseCounts{}.Reasons)]uint64           = Counters{}.ResetReasons
	_ [len(bpf.TcpcloseCounts{}.SuppressedReasons)]uint64 = Counters{}.SuppressedReasons
)

// Counters are the kernel's exact totals since the programs were loaded,
// summed over CPUs. They count every event that passed the filters,
// streamed or not, so they stay exact when the ring overflows.
type Counters struct {
	Kinds        [numKinds]uint64
	ResetReasons [NumReasonSlots]uint64 // every RST sent, by enum sk_rst_reason
	UnreadBytes  uint64
	UnsentBytes  uint64
	RefusedBytes uint64
	RingLost     uint64 // records counted but not streamed: the ring was full
	// TimeWaitRefusals are the data_after_close events a TIME_WAIT
	// mini-socket answered; the rest aborted a full socket, which the
	// kernel counts as TCPAbortOnData.
	TimeWaitRefusals uint64
	UnreadHist       [HistBuckets]uint64
	// Suppressed are events counted but not streamed because their kind's
	// budget (Options.Budget) was spent; SuppressedReasons splits those of
	// reset_sent by reason. Streamed + suppressed + lost = counted.
	Suppressed        [numKinds]uint64
	SuppressedReasons [NumReasonSlots]uint64
}

// Sub returns c minus before, counter by counter: what happened between two reads.
func (c Counters) Sub(before *Counters) Counters {
	for i := range c.Kinds {
		c.Kinds[i] -= before.Kinds[i]
	}
	for i := range c.ResetReasons {
		c.ResetReasons[i] -= before.ResetReasons[i]
	}
	for i := range c.UnreadHist {
		c.UnreadHist[i] -= before.UnreadHist[i]
	}
	for i := range c.Suppressed {
		c.Suppressed[i] -= before.Suppressed[i]
	}
	for i := range c.SuppressedReasons {
		c.SuppressedReasons[i] -= before.SuppressedReasons[i]
	}
	c.UnreadBytes -= before.UnreadBytes
	c.UnsentBytes -= before.UnsentBytes
	c.RefusedBytes -= before.RefusedBytes
	c.RingLost -= before.RingLost
	c.TimeWaitRefusals -= before.TimeWaitRefusals
	return c
}

// Kind returns the count of one event kind.
func (c *Counters) Kind(k Kind) uint64 {
	if k < numKinds {
		return c.Kinds[k]
	}
	return 0
}

// AbortsOnData returns the events the kernel counts as TCPAbortOnData:
// zero-linger closes, and data after close that aborted a full socket.
func (c *Counters) AbortsOnData() uint64 {
	return c.Kind(KindAbortClose) + c.Kind(KindDataAfterClose) - c.TimeWaitRefusals
}

// ResetsSent returns the number of RSTs sent, of any reason.
func (c *Counters) ResetsSent() uint64 {
	var n uint64
	for _, v := range c.ResetReasons {
		n += v
	}
	return n
}

func readCounters(m *ebpf.Map) (Counters, error) {
	var perCPU []bpf.TcpcloseCounts
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return Counters{}, fmt.Errorf("read counters: %w", err)
	}
	var c Counters
	for i := range perCPU {
		p := &perCPU[i]
		for k := range c.Kinds {
			c.Kinds[k] += p.Kinds[k]
		}
		for r := range c.ResetReasons {
			c.ResetReasons[r] += p.Reasons[r]
		}
		for b := range c.UnreadHist {
			c.UnreadHist[b] += p.UnreadHist[b]
		}
		for k := range c.Suppressed {
			c.Suppressed[k] += p.Suppressed[k]
		}
		for r := range c.SuppressedReasons {
			c.SuppressedReasons[r] += p.SuppressedReasons[r]
		}
		c.UnreadBytes += p.UnreadBytes
		c.UnsentBytes += p.UnsentBytes
		c.RefusedBytes += p.RefusedBytes
		c.RingLost += p.RingLost
		c.TimeWaitRefusals += p.TimeWaitRefusals
	}
	return c, nil
}

// SuppressedTotal returns the events suppressed by the budget, of any kind.
func (c *Counters) SuppressedTotal() uint64 {
	var n uint64
	for _, v := range c.Suppressed {
		n += v
	}
	return n
}

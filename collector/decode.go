package collector

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
)

const afInet6 = 10

// The record's flags: bpf/tcpclose.c's enum event_flag, as bpf2go generates it.
const (
	evfOwner       = uint16(bpf.TcpcloseEventFlagEVF_OWNER)
	evfPeerFIN     = uint16(bpf.TcpcloseEventFlagEVF_PEER_FIN)
	evfShutWR      = uint16(bpf.TcpcloseEventFlagEVF_SHUT_WR)
	evfReason      = uint16(bpf.TcpcloseEventFlagEVF_REASON)
	evfTimeWait    = uint16(bpf.TcpcloseEventFlagEVF_TIME_WAIT)
	evfNoSocket    = uint16(bpf.TcpcloseEventFlagEVF_NO_SOCKET)
	evfProvisional = uint16(bpf.TcpcloseEventFlagEVF_PROVISIONAL)
	evfLocalAbort  = uint16(bpf.TcpcloseEventFlagEVF_LOCAL_ABORT)
	evfListener    = uint16(bpf.TcpcloseEventFlagEVF_LISTENER)
	evfNoStorage   = uint16(bpf.TcpcloseEventFlagEVF_NO_STORAGE)
	evfNoStack     = uint16(bpf.TcpcloseEventFlagEVF_NO_STACK)
)

// RawEvent is the record the kernel writes to the ring buffer.
type RawEvent = bpf.TcpcloseEvent

// RawEventSize is the size of a RawEvent record.
const RawEventSize = int(unsafe.Sizeof(RawEvent{}))

// Decoder turns raw records into Events. It is not safe for concurrent use.
type Decoder struct {
	// Reasons names enum sk_rst_reason values; nil means numbers only.
	Reasons *Reasons
	// BootTime converts the kernel's boot-clock nanoseconds to wall time.
	BootTime time.Time

	comms   names // process names
	threads names // thread names
}

// names interns the kernel's 16-byte names: no allocation per event.
type names struct {
	known map[[16]int8]string
	// The last name decoded: events come in runs from one process, and a
	// comparison is cheaper than the map's hash.
	last    [16]int8
	lastStr string
}

// Decode fills ev from a raw record.
func (d *Decoder) Decode(raw []byte, ev *Event) error {
	if len(raw) < RawEventSize {
		return fmt.Errorf("short record: %d bytes, want %d", len(raw), RawEventSize)
	}
	r := (*RawEvent)(unsafe.Pointer(&raw[0]))
	d.DecodeRaw(r, ev)
	return nil
}

// DecodeRaw fills ev from a typed raw record.
func (d *Decoder) DecodeRaw(r *RawEvent, ev *Event) {
	*ev = Event{
		Time:         d.BootTime.Add(time.Duration(r.TsNs)),
		Kind:         Kind(r.Kind),
		PID:          r.Pid,
		TID:          r.Tid,
		CgroupID:     r.CgroupId,
		Netns:        r.Netns,
		LPort:        r.Lport,
		RPort:        r.Rport,
		Cookie:       r.Cookie,
		State:        State(r.State),
		UnreadBytes:  r.UnreadBytes,
		UnsentBytes:  r.UnsentBytes,
		RefusedBytes: r.RefusedBytes,
		OwnerKnown:   r.Flags&evfOwner != 0,
		PeerFIN:      r.Flags&evfPeerFIN != 0,
		ShutWR:       r.Flags&evfShutWR != 0,
		TimeWait:     r.Flags&evfTimeWait != 0,
		NoSocket:     r.Flags&evfNoSocket != 0,
		Listener:     r.Flags&evfListener != 0,
		NoStorage:    r.Flags&evfNoStorage != 0,
		StackID:      r.Stack,
		NoStack:      r.Flags&evfNoStack != 0,
		provisional:  r.Flags&evfProvisional != 0,
		localAbort:   r.Flags&evfLocalAbort != 0,
	}
	ev.LAddr = addr(r.Family, &r.Laddr)
	ev.RAddr = addr(r.Family, &r.Raddr)
	if ev.OwnerKnown {
		ev.Comm = d.comms.name(&r.Comm)
		if r.Thread == r.Comm {
			ev.Thread = ev.Comm
		} else {
			ev.Thread = d.threads.name(&r.Thread)
		}
	}
	if ev.Kind == KindResetSent || ev.Kind == KindDataAfterClose {
		switch {
		case r.Flags&evfReason == 0 || r.Reason == uint16(ReasonUnknownSlot):
			ev.Reason = "unknown"
		default:
			ev.Reason = d.Reasons.Name(r.Reason)
		}
	}
}

func (n *names) name(c *[16]int8) string {
	if *c == n.last && n.lastStr != "" {
		return n.lastStr
	}
	if s, ok := n.known[*c]; ok {
		n.last, n.lastStr = *c, s
		return s
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), len(c))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	s := string(b)
	if n.known == nil {
		n.known = make(map[[16]int8]string)
	}
	if len(n.known) >= 4096 { // bound the intern table
		clear(n.known)
	}
	n.known[*c] = s
	n.last, n.lastStr = *c, s
	return s
}

func addr(family uint16, b *[16]uint8) netip.Addr {
	if family == afInet6 {
		return netip.AddrFrom16(*b).Unmap()
	}
	return netip.AddrFrom4([4]byte{b[0], b[1], b[2], b[3]})
}

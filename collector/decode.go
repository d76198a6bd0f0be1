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

// has reports whether a record's flags hold f (bpf/tcpclose.c, enum event_flag).
func has(flags uint16, f bpf.TcpcloseEventFlag) bool { return bpf.TcpcloseEventFlag(flags)&f != 0 }

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
		OwnerKnown:   has(r.Flags, bpf.TcpcloseEventFlagEVF_OWNER),
		PeerFIN:      has(r.Flags, bpf.TcpcloseEventFlagEVF_PEER_FIN),
		ShutWR:       has(r.Flags, bpf.TcpcloseEventFlagEVF_SHUT_WR),
		TimeWait:     has(r.Flags, bpf.TcpcloseEventFlagEVF_TIME_WAIT),
		NoSocket:     has(r.Flags, bpf.TcpcloseEventFlagEVF_NO_SOCKET),
		Listener:     has(r.Flags, bpf.TcpcloseEventFlagEVF_LISTENER),
		NoStorage:    has(r.Flags, bpf.TcpcloseEventFlagEVF_NO_STORAGE),
		StackID:      r.Stack,
		NoStack:      has(r.Flags, bpf.TcpcloseEventFlagEVF_NO_STACK),
		provisional:  has(r.Flags, bpf.TcpcloseEventFlagEVF_PROVISIONAL),
		localAbort:   has(r.Flags, bpf.TcpcloseEventFlagEVF_LOCAL_ABORT),
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
		case !has(r.Flags, bpf.TcpcloseEventFlagEVF_REASON) || r.Reason == uint16(ReasonUnknownSlot):
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

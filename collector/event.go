package collector

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
	"github.com/tcpclose-trace/tcpclose-trace/symbolize"
)

// Kind is what happened to a connection. Its String form is a stable name:
// the JSON contract and the metric label value.
type Kind uint8

// The event kinds: bpf/tcpclose.c's enum event_kind, as bpf2go generates it.
const (
	KindNone           = Kind(bpf.TcpcloseEventKindKIND_NONE)
	KindUnreadClose    = Kind(bpf.TcpcloseEventKindKIND_UNREAD_CLOSE)
	KindUndrainedClose = Kind(bpf.TcpcloseEventKindKIND_UNDRAINED_CLOSE)
	KindDataAfterClose = Kind(bpf.TcpcloseEventKindKIND_DATA_AFTER_CLOSE)
	KindAbortClose     = Kind(bpf.TcpcloseEventKindKIND_ABORT_CLOSE)
	KindResetReceived  = Kind(bpf.TcpcloseEventKindKIND_RESET_RECEIVED)
	KindResetSent      = Kind(bpf.TcpcloseEventKindKIND_RESET_SENT)
	KindGracefulClose  = Kind(bpf.TcpcloseEventKindKIND_GRACEFUL_CLOSE)
	numKinds           = Kind(bpf.TcpcloseEventKindNR_KINDS)
)

var kindNames = [numKinds]string{
	KindNone:           "none",
	KindUnreadClose:    "unread_close",
	KindUndrainedClose: "undrained_close",
	KindDataAfterClose: "data_after_close",
	KindAbortClose:     "abort_close",
	KindResetReceived:  "reset_received",
	KindResetSent:      "reset_sent",
	KindGracefulClose:  "graceful_close",
}

// Kinds lists the public event kinds in their stable order.
func Kinds() []Kind {
	return []Kind{KindUnreadClose, KindUndrainedClose, KindDataAfterClose, KindAbortClose,
		KindResetReceived, KindResetSent, KindGracefulClose}
}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MarshalText writes the stable name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ParseKind returns the kind with the given stable name.
func ParseKind(name string) (Kind, error) {
	for _, k := range Kinds() {
		if k.String() == name {
			return k, nil
		}
	}
	return KindNone, fmt.Errorf("unknown event kind %q", name)
}

// Anomaly reports whether the kind means data was, or may be, lost.
func (k Kind) Anomaly() bool {
	return k != KindNone && k != KindGracefulClose && k < numKinds
}

// State is a TCP socket state (include/net/tcp_states.h).
type State uint8

var stateNames = [...]string{"", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE(%d)", uint8(s))
}

// MarshalText writes the kernel's name of the state.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Event is one decoded, correlated observation.
type Event struct {
	Time     time.Time
	Kind     Kind
	PID      uint32 // thread-group id of the owner (the process that closed, for closes)
	TID      uint32 // the thread that acted on the socket
	Comm     string // the process's name (its thread-group leader's comm)
	Thread   string // the thread's name (its comm), e.g. a JVM's "http-nio-8080-e"
	CgroupID uint64
	Netns    uint32
	LAddr    netip.Addr // v4-mapped addresses are unmapped
	LPort    uint16
	RAddr    netip.Addr
	RPort    uint16
	Cookie   uint64
	State    State // the socket's state when it happened (before a close)
	Reason   string

	UnreadBytes  uint32
	UnsentBytes  uint32
	RefusedBytes uint32

	OwnerKnown bool // PID, TID, Comm, Thread and CgroupID were recorded for this socket
	PeerFIN    bool // the peer's FIN had arrived before the close
	ShutWR     bool // shutdown(SHUT_WR) preceded the close
	TimeWait   bool // seen on a TIME_WAIT mini-socket
	NoSocket   bool // a reset sent with no socket (e.g. SYN to a closed port)
	// Listener: a reset sent by a listening socket for a segment of a
	// connection it does not have; the addresses are the segment's.
	Listener bool
	// NoStorage: the kernel could not create the socket's storage (its
	// allocation failed), so the owner of this socket's later events (or of
	// this one, outside a close) may be missing. The event is counted.
	NoStorage bool

	// StackID names the closer's user stack (Options.Stacks) in the
	// kernel's stack map: see Collector.StackFrames; 0 when none. A
	// data_after_close joined to its undrained_close carries the close's.
	StackID uint32
	// NoStack: the stack was asked for but the kernel could not capture
	// it (e.g. a close at exit, after the process's memory was released).
	NoStack bool
	// Stack is the symbolized stack when an enrichment stage resolved
	// StackID (package symbolize); nil otherwise.
	Stack *Stack

	// Pod names the Kubernetes pod and container the owner ran in; nil
	// outside pods or without pod attribution (see package kubepods).
	Pod *PodInfo

	// SinceClose is, for a data_after_close joined to its undrained_close,
	// the time between that close and the refused data.
	SinceClose time.Duration

	closed closeFacts // for a data_after_close: its undrained_close (UndrainedClose)

	provisional bool // reset_received that a local abort may still cancel
	localAbort  bool // data_after_close that cancels a provisional reset_received
}

// closeFacts is what the collector remembered of an undrained close, told
// with the data_after_close that follows it.
type closeFacts struct {
	known, ownerKnown, shutWR, noStorage bool
	state                                State
	pid, tid                             uint32
	comm, thread                         string
	stack                                uint32
	cgroupID                             uint64
	at                                   int64 // Unix nanoseconds
}

// UndrainedClose sets *close to the undrained_close that this
// data_after_close follows, as the collector remembered it, and reports
// whether it did: false for other kinds, and when the close was not seen
// (before the tracer started, evicted, aged out). The two are one story:
// the close skipped the drain, and the peer's data then came. The close's
// addresses, cookie and pod are this event's (the same socket); its owner
// is the close's.
func (e *Event) UndrainedClose(close *Event) bool {
	f := &e.closed
	if e.Kind != KindDataAfterClose || !f.known {
		return false
	}
	*close = Event{Time: time.Unix(0, f.at), Kind: KindUndrainedClose, Netns: e.Netns, LAddr: e.LAddr, LPort: e.LPort,
		RAddr: e.RAddr, RPort: e.RPort, Cookie: e.Cookie, State: f.state, ShutWR: f.shutWR, NoStorage: f.noStorage,
		StackID: f.stack}
	if f.stack != 0 && f.stack == e.StackID {
		close.Stack = e.Stack // the data's stack is the close's (the collector's join)
	}
	if f.ownerKnown {
		close.OwnerKnown, close.PID, close.TID, close.Comm, close.Thread, close.CgroupID = true, f.pid, f.tid, f.comm, f.thread, f.cgroupID
		if e.OwnerKnown && e.CgroupID == f.cgroupID {
			close.Pod = e.Pod
		}
	}
	return true
}

// SetUndrainedClose records close as the undrained_close that this
// data_after_close follows (the collector's join; UndrainedClose tells it
// back). Only the close's time, owner, state and flags are kept: the rest
// is the same socket's.
func (e *Event) SetUndrainedClose(close *Event) {
	e.closed = closeFacts{known: true, at: close.Time.UnixNano(), state: close.State, shutWR: close.ShutWR,
		noStorage: close.NoStorage, ownerKnown: close.OwnerKnown, stack: close.StackID}
	if close.OwnerKnown {
		e.closed.pid, e.closed.tid, e.closed.comm, e.closed.thread, e.closed.cgroupID = close.PID, close.TID, close.Comm, close.Thread, close.CgroupID
	}
}

// Stack is a symbolized user call stack, innermost frame first.
type Stack struct {
	Frames []symbolize.Frame
}

// PodInfo names the Kubernetes pod and container of a socket's owner.
// Fields the node could not tell are empty.
type PodInfo struct {
	Namespace   string
	Name        string
	UID         string
	Container   string // empty for the pod's sandbox and when unknown
	ContainerID string
}

// Family returns "ipv4" or "ipv6".
func (e *Event) Family() string {
	if e.LAddr.Is6() {
		return "ipv6"
	}
	return "ipv4"
}

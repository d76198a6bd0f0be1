package output

import (
	"io"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// Record is the JSON form of an event: one object per line (NDJSON). Field
// names are a stable contract, documented in docs/events.md.
type Record struct {
	Time         string       `json:"time"`
	Kind         string       `json:"kind"`
	PID          uint32       `json:"pid"`
	TID          uint32       `json:"tid,omitempty"`
	Comm         string       `json:"comm"`
	Thread       string       `json:"thread,omitempty"`
	Netns        uint32       `json:"netns"`
	CgroupID     uint64       `json:"cgroup_id"`
	Family       string       `json:"family"`
	LAddr        string       `json:"laddr"`
	LPort        uint16       `json:"lport"`
	RAddr        string       `json:"raddr"`
	RPort        uint16       `json:"rport"`
	Cookie       uint64       `json:"cookie"`
	State        string       `json:"state"`
	Reason       string       `json:"reason"`
	UnreadBytes  uint32       `json:"unread_bytes"`
	UnsentBytes  uint32       `json:"unsent_bytes"`
	RefusedBytes uint32       `json:"refused_bytes"`
	PeerFIN      bool         `json:"peer_fin,omitempty"`
	ShutWR       bool         `json:"shut_wr,omitempty"`
	TimeWait     bool         `json:"time_wait,omitempty"`
	NoSocket     bool         `json:"no_socket,omitempty"`
	Listener     bool         `json:"listener,omitempty"`
	NoStorage    bool         `json:"no_storage,omitempty"`
	SinceCloseNs int64        `json:"since_close_ns,omitempty"`
	Namespace    string       `json:"namespace,omitempty"`
	Pod          string       `json:"pod,omitempty"`
	PodUID       string       `json:"pod_uid,omitempty"`
	Container    string       `json:"container,omitempty"`
	ContainerID  string       `json:"container_id,omitempty"`
	Stack        []StackFrame `json:"stack,omitempty"`
}

// StackFrame is one frame of Record.Stack, innermost first: the function,
// file and line where the binary's symbols tell, else the mapped file
// (module) and the offset in it, with the file's build id when it has one.
type StackFrame struct {
	Func    string `json:"func,omitempty"`
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Module  string `json:"module,omitempty"`
	Offset  uint64 `json:"offset"`
	BuildID string `json:"build_id,omitempty"`
	JIT     bool   `json:"jit,omitempty"`
	Inlined bool   `json:"inlined,omitempty"`
}

// NewRecord converts an event to its JSON form.
func NewRecord(ev *collector.Event) Record {
	r := Record{
		Time:         ev.Time.UTC().Format(time.RFC3339Nano),
		Kind:         ev.Kind.String(),
		Netns:        ev.Netns,
		Family:       ev.Family(),
		LPort:        ev.LPort,
		RPort:        ev.RPort,
		Cookie:       ev.Cookie,
		State:        ev.State.String(),
		Reason:       ev.Reason,
		UnreadBytes:  ev.UnreadBytes,
		UnsentBytes:  ev.UnsentBytes,
		RefusedBytes: ev.RefusedBytes,
		PeerFIN:      ev.PeerFIN,
		ShutWR:       ev.ShutWR,
		TimeWait:     ev.TimeWait,
		NoSocket:     ev.NoSocket,
		Listener:     ev.Listener,
		NoStorage:    ev.NoStorage,
		SinceCloseNs: int64(ev.SinceClose),
	}
	if ev.OwnerKnown {
		r.PID, r.TID, r.Comm, r.Thread, r.CgroupID = ev.PID, ev.TID, ev.Comm, ev.Thread, ev.CgroupID
	}
	if p := ev.Pod; p != nil {
		r.Namespace, r.Pod, r.PodUID, r.Container, r.ContainerID = p.Namespace, p.Name, p.UID, p.Container, p.ContainerID
	}
	if ev.Stack != nil {
		for _, f := range ev.Stack.Frames {
			r.Stack = append(r.Stack, StackFrame{Func: f.Func, File: f.File, Line: f.Line, Module: f.Module,
				Offset: f.Offset, BuildID: f.BuildID, JIT: f.JIT, Inlined: f.Inlined})
		}
	}
	if ev.LAddr.IsValid() {
		r.LAddr = ev.LAddr.String()
	}
	if ev.RAddr.IsValid() {
		r.RAddr = ev.RAddr.String()
	}
	return r
}

// JSON writes NDJSON, one object per event, buffered until Flush. It writes
// what encoding/json writes for NewRecord, without reflection or allocation.
type JSON struct {
	out lines
	enc encoder
}

// NewJSON returns a JSON sink writing to w (on a pipe, without waking the
// Go runtime's monitor thread: see pipeWriter).
func NewJSON(w io.Writer) *JSON { return &JSON{out: lines{w: fastWriter(w)}, enc: encoder{html: true}} }

// Write implements Sink.
func (j *JSON) Write(ev *collector.Event) error {
	j.out.buf = j.enc.appendRecord(j.out.buf, ev)
	return j.out.flushIfFull()
}

// Flush implements Sink.
func (j *JSON) Flush() error { return j.out.flush() }

// appendRecord appends ev as one NDJSON line, byte for byte what
// encoding/json writes for NewRecord(ev).
func (e *encoder) appendRecord(b []byte, ev *collector.Event) []byte {
	start := len(b)
	b = e.appendFields(b, ev, false)
	if len(b) == start {
		return append(b, '{', '}', '\n')
	}
	b[start] = '{' // the first key's comma
	return append(b, '}', '\n')
}

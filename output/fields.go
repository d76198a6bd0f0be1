package output

import (
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// field is one member of the JSON contract, in Record's order. The fast
// encoders (NDJSON and the JSON log lines) and the slog attributes are all
// built from this one list; tests check it against Record's tags and the
// output against encoding/json and slog.
type field struct {
	name string
	// omitEmpty: Record's tag says omitempty. logOmitEmpty: the log line
	// leaves the field out when empty too (it keeps the others).
	omitEmpty, logOmitEmpty bool
	// pod: a name of the owner's pod, empty whenever the event has none.
	pod bool
	// typ says which getter holds the value: a typed getter, rather than
	// a closure that also encodes, keeps the per-field cost to one call.
	typ  fieldType
	str  func(ev *collector.Event) string      // typString
	num  func(ev *collector.Event) uint64      // typUint; typInt holds an int64
	flag func(ev *collector.Event) bool        // typBool
	addr func(ev *collector.Event) *netip.Addr // typAddr
}

type fieldType uint8

const (
	typTime   fieldType = iota // the event's time, in UTC
	typString                  // a JSON string
	typUint                    // a JSON number
	typInt                     // a JSON number, num's value read as an int64
	typBool                    // true or false
	typAddr                    // an address as a string, "" when there is none
	typStack                   // the event's symbolized stack (StackFrames)
)

// fields is the JSON contract, in Record's order. Add a Record field here too.
var fields = []field{
	{name: "time", typ: typTime},
	stringField("kind", false, func(ev *collector.Event) string { return ev.Kind.String() }),
	uintField("pid", false, func(ev *collector.Event) uint64 { return ownerOnly(ev, uint64(ev.PID)) }),
	uintField("tid", true, func(ev *collector.Event) uint64 { return ownerOnly(ev, uint64(ev.TID)) }),
	stringField("comm", false, func(ev *collector.Event) string {
		if ev.OwnerKnown {
			return ev.Comm
		}
		return ""
	}),
	stringField("thread", true, func(ev *collector.Event) string {
		if ev.OwnerKnown {
			return ev.Thread
		}
		return ""
	}),
	uintField("netns", false, func(ev *collector.Event) uint64 { return uint64(ev.Netns) }),
	uintField("cgroup_id", false, func(ev *collector.Event) uint64 { return ownerOnly(ev, ev.CgroupID) }),
	stringField("family", false, func(ev *collector.Event) string { return ev.Family() }),
	{name: "laddr", typ: typAddr, addr: func(ev *collector.Event) *netip.Addr { return &ev.LAddr }},
	uintField("lport", false, func(ev *collector.Event) uint64 { return uint64(ev.LPort) }),
	{name: "raddr", typ: typAddr, addr: func(ev *collector.Event) *netip.Addr { return &ev.RAddr }},
	uintField("rport", false, func(ev *collector.Event) uint64 { return uint64(ev.RPort) }),
	uintField("cookie", false, func(ev *collector.Event) uint64 { return ev.Cookie }),
	stringField("state", false, func(ev *collector.Event) string { return ev.State.String() }),
	stringField("reason", false, func(ev *collector.Event) string { return ev.Reason }),
	uintField("unread_bytes", false, func(ev *collector.Event) uint64 { return uint64(ev.UnreadBytes) }),
	uintField("unsent_bytes", false, func(ev *collector.Event) uint64 { return uint64(ev.UnsentBytes) }),
	uintField("refused_bytes", false, func(ev *collector.Event) uint64 { return uint64(ev.RefusedBytes) }),
	boolField("peer_fin", func(ev *collector.Event) bool { return ev.PeerFIN }),
	boolField("shut_wr", func(ev *collector.Event) bool { return ev.ShutWR }),
	boolField("time_wait", func(ev *collector.Event) bool { return ev.TimeWait }),
	boolField("no_socket", func(ev *collector.Event) bool { return ev.NoSocket }),
	boolField("listener", func(ev *collector.Event) bool { return ev.Listener }),
	boolField("no_storage", func(ev *collector.Event) bool { return ev.NoStorage }),
	{name: "since_close_ns", omitEmpty: true, logOmitEmpty: true, typ: typInt,
		num: func(ev *collector.Event) uint64 { return uint64(ev.SinceClose) }},
	podField("namespace", func(p *collector.PodInfo) string { return p.Namespace }),
	podField("pod", func(p *collector.PodInfo) string { return p.Name }),
	podField("pod_uid", func(p *collector.PodInfo) string { return p.UID }),
	podField("container", func(p *collector.PodInfo) string { return p.Container }),
	podField("container_id", func(p *collector.PodInfo) string { return p.ContainerID }),
	// In NDJSON an array of frames; in log lines the top frames as a string.
	{name: "stack", omitEmpty: true, logOmitEmpty: true, typ: typStack},
}

// podField is a name of the owner's pod: left out (in NDJSON and logs)
// outside pods and where the node could not tell it.
func podField(name string, get func(*collector.PodInfo) string) field {
	f := stringField(name, true, func(ev *collector.Event) string {
		if ev.Pod == nil {
			return ""
		}
		return get(ev.Pod)
	})
	f.pod = true
	return f
}

func ownerOnly(ev *collector.Event, v uint64) uint64 {
	if ev.OwnerKnown {
		return v
	}
	return 0
}

func stringField(name string, omitEmpty bool, get func(*collector.Event) string) field {
	return field{name: name, omitEmpty: omitEmpty, logOmitEmpty: omitEmpty, typ: typString, str: get}
}

func uintField(name string, omitEmpty bool, get func(*collector.Event) uint64) field {
	return field{name: name, omitEmpty: omitEmpty, typ: typUint, num: get}
}

func boolField(name string, get func(*collector.Event) bool) field {
	return field{name: name, omitEmpty: true, typ: typBool, flag: get}
}

// isEmpty reports whether the field's value in ev is its type's zero: what
// omitempty leaves out.
func (f *field) isEmpty(ev *collector.Event) bool {
	switch f.typ {
	case typString:
		return f.str(ev) == ""
	case typUint, typInt:
		return f.num(ev) == 0
	case typBool:
		return !f.flag(ev)
	case typAddr:
		return !f.addr(ev).IsValid()
	case typStack:
		return ev.Stack == nil || len(ev.Stack.Frames) == 0
	}
	return false
}

// quoted reports whether the field's JSON value is a string.
func (f *field) quoted() bool { return f.typ == typTime || f.typ == typString || f.typ == typAddr }

// value is the field's value as a slog attribute (the logfmt path).
func (f *field) value(ev *collector.Event) slog.Value {
	switch f.typ {
	case typTime:
		return slog.StringValue(ev.Time.UTC().Format(time.RFC3339Nano))
	case typString:
		return slog.StringValue(f.str(ev))
	case typUint:
		return slog.Uint64Value(f.num(ev))
	case typInt:
		return slog.Int64Value(int64(f.num(ev)))
	case typBool:
		return slog.BoolValue(f.flag(ev))
	case typStack:
		return slog.StringValue(StackLine(ev.Stack, logStackFrames))
	}
	if a := f.addr(ev); a.IsValid() {
		return slog.StringValue(a.String())
	}
	return slog.StringValue("")
}

// keys are the fields' `,"name":` prefixes, and logKeys the log's; for a
// string value, the opening quote too.
var keys, logKeys = fieldKeys()

// key is a field's prefix in a fixed-size array: appended with one inline
// copy of the whole array, where a slice's bytes would cost a call.
type key struct {
	b [maxKey]byte
	n int
}

// maxKey bounds a key's length (a test checks it).
const maxKey = 32

func newKey(s string) key {
	k := key{n: len(s)}
	copy(k.b[:], s)
	return k
}

// appendKey appends k.
func appendKey(b []byte, k *key) []byte {
	if cap(b)-len(b) < maxKey {
		b = slices.Grow(b, maxKey)
	}
	n := len(b)
	*(*[maxKey]byte)(b[n : n+maxKey]) = k.b
	return b[:n+k.n]
}

func fieldKeys() (keys, logKeys []key) {
	for i := range fields {
		f := &fields[i]
		quote := ""
		if f.quoted() {
			quote = `"`
		}
		keys = append(keys, newKey(`,"`+f.name+`":`+quote))
		logKeys = append(logKeys, newKey(`,"`+logName(f)+`":`+quote))
	}
	return keys, logKeys
}

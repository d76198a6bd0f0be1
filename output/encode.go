package output

import (
	"log/slog"
	"net/netip"
	"time"
	"unicode/utf8"

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
	{name: "since_close_ns", omitEmpty: true, logOmitEmpty: true, typ: typInt,
		num: func(ev *collector.Event) uint64 { return uint64(ev.SinceClose) }},
	podField("namespace", func(p *collector.PodInfo) string { return p.Namespace }),
	podField("pod", func(p *collector.PodInfo) string { return p.Name }),
	podField("pod_uid", func(p *collector.PodInfo) string { return p.UID }),
	podField("container", func(p *collector.PodInfo) string { return p.Container }),
	podField("container_id", func(p *collector.PodInfo) string { return p.ContainerID }),
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

// appendJSON appends the field's JSON value and reports whether it is empty.
func (f *field) appendJSON(e *encoder, b []byte, ev *collector.Event) ([]byte, bool) {
	switch f.typ {
	case typTime:
		b = append(b, '"')
		b = e.utc.append(b, ev.Time.UTC())
		return append(b, '"'), false
	case typString:
		s := f.str(ev)
		return e.appendString(b, s), s == ""
	case typUint:
		v := f.num(ev)
		return appendUint(b, v), v == 0
	case typInt:
		v := int64(f.num(ev))
		if v < 0 {
			return appendUint(append(b, '-'), uint64(-v)), false
		}
		return appendUint(b, uint64(v)), v == 0
	case typBool:
		if f.flag(ev) {
			return append(b, "true"...), false
		}
		return append(b, "false"...), true
	}
	a := f.addr(ev)
	if !a.IsValid() {
		return append(b, '"', '"'), true
	}
	b = append(b, '"')
	b = a.AppendTo(b) // digits, dots, colons and hex: nothing to escape
	return append(b, '"'), false
}

// empty reports, without encoding it, whether the field is empty in ev
// when that is cheaper to tell than the value is to write.
func (f *field) empty(ev *collector.Event) (empty, known bool) {
	switch {
	case f.pod && ev.Pod == nil:
		return true, true
	case f.typ == typBool:
		return !f.flag(ev), true
	}
	return false, false
}

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
	}
	if a := f.addr(ev); a.IsValid() {
		return slog.StringValue(a.String())
	}
	return slog.StringValue("")
}

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"4041424344454647484950515253545556575859606162636465666768697071727374757677787980" +
	"81828384858687888990919293949596979899"

// appendUint appends v in decimal, as strconv.AppendUint(b, v, 10) does.
func appendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte('0'+v))
	}
	var d [20]byte
	i := len(d)
	for v >= 100 {
		q := v / 100
		r := (v - q*100) * 2
		i -= 2
		d[i], d[i+1] = digitPairs[r], digitPairs[r+1]
		v = q
	}
	if v >= 10 {
		i -= 2
		d[i], d[i+1] = digitPairs[v*2], digitPairs[v*2+1]
	} else {
		i--
		d[i] = byte('0' + v)
	}
	return append(b, d[i:]...)
}

// encoder appends events as JSON without reflection or allocation. It is not
// safe for concurrent use.
type encoder struct {
	// html: escape <, > and & and write \b and \f short, as encoding/json
	// does; otherwise escape as log/slog's JSON handler does.
	html bool
	utc  timeCache // event times, in UTC
	now  timeCache // log times, in the local zone (as slog writes them)
	// byKind holds, per event kind, the log line's constant parts already
	// escaped: level and message, and the hint.
	byKind [32]*logConsts
}

type logConsts struct{ head, hint []byte }

// logConstsOf returns the constant parts of kind k's log lines.
func (e *encoder) logConstsOf(k collector.Kind) *logConsts {
	if int(k) < len(e.byKind) && e.byKind[k] != nil {
		return e.byKind[k]
	}
	c := &logConsts{}
	c.head = append(c.head, `,"level":`...)
	c.head = e.appendString(c.head, logLevel(k).String())
	c.head = append(c.head, `,"msg":`...)
	c.head = e.appendString(c.head, logMessages[k])
	if h := Hint(k); h != "" {
		c.hint = append(c.hint, `,"hint":`...)
		c.hint = e.appendString(c.hint, h)
	}
	if int(k) < len(e.byKind) {
		e.byKind[k] = c
	}
	return c
}

// keys are the fields' `,"name":` prefixes, and logKeys the log's.
var keys, logKeys = fieldKeys()

func fieldKeys() (keys, logKeys []string) {
	for i := range fields {
		keys = append(keys, `,"`+fields[i].name+`":`)
		logKeys = append(logKeys, `,"`+logName(&fields[i])+`":`)
	}
	return keys, logKeys
}

// appendRecord appends ev as one NDJSON line, byte for byte what
// encoding/json writes for NewRecord(ev).
func (e *encoder) appendRecord(b []byte, ev *collector.Event) []byte {
	start := len(b)
	for i := range fields {
		f := &fields[i]
		if f.omitEmpty {
			if empty, known := f.empty(ev); known && empty {
				continue
			}
		}
		mark := len(b)
		b = append(b, keys[i]...)
		var empty bool
		if b, empty = f.appendJSON(e, b, ev); empty && f.omitEmpty {
			b = b[:mark]
		}
	}
	if len(b) == start {
		return append(b, '{', '}', '\n')
	}
	b[start] = '{' // the first key's comma
	return append(b, '}', '\n')
}

// appendLogLine appends ev as the line log/slog's JSON handler writes for
// the Log sink's record: time, level, msg, the fields (time as event_time),
// then the hint.
func (e *encoder) appendLogLine(b []byte, now time.Time, ev *collector.Event) []byte {
	consts := e.logConstsOf(ev.Kind)
	b = append(b, `{"time":"`...)
	b = e.now.append(b, now)
	b = append(b, '"')
	b = append(b, consts.head...)
	for i := range fields {
		f := &fields[i]
		if f.logOmitEmpty {
			if empty, known := f.empty(ev); known && empty {
				continue
			}
		}
		mark := len(b)
		b = append(b, logKeys[i]...)
		var empty bool
		if b, empty = f.appendJSON(e, b, ev); empty && f.logOmitEmpty {
			b = b[:mark]
		}
	}
	b = append(b, consts.hint...)
	return append(b, '}', '\n')
}

// logName is a field's key in log lines: the log has its own time.
func logName(f *field) string {
	if f.name == "time" {
		return "event_time"
	}
	return f.name
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a quoted JSON string, escaped as encoding/json
// (html) or log/slog escapes it; invalid UTF-8 becomes U+FFFD.
func (e *encoder) appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && (!e.html || (c != '<' && c != '>' && c != '&')) {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b' && e.html:
				b = append(b, '\\', 'b')
			case c == '\f' && e.html:
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// timeCache formats times as time.RFC3339Nano, redoing the calendar
// arithmetic only when the second (or the location) changes: events come in
// bursts. The zone offset is a function of the location and the second.
type timeCache struct {
	sec    int64
	loc    *time.Location
	prefix []byte // "2006-01-02T15:04:05"
	zone   []byte // "Z07:00"
}

func (c *timeCache) append(b []byte, t time.Time) []byte {
	if sec, loc := t.Unix(), t.Location(); sec != c.sec || loc != c.loc || c.prefix == nil {
		// Only years 0-9999 are cached: a hit implies one.
		if y := t.Year(); y < 0 || y > 9999 {
			return t.AppendFormat(b, time.RFC3339Nano) // not worth caching
		}
		c.prefix = t.AppendFormat(c.prefix[:0], "2006-01-02T15:04:05")
		c.zone = t.AppendFormat(c.zone[:0], "Z07:00")
		c.sec, c.loc = sec, loc
	}
	b = append(b, c.prefix...)
	if ns := t.Nanosecond(); ns != 0 {
		var frac [10]byte
		frac[0] = '.'
		for i := 8; i >= 2; i -= 2 {
			r := ns % 100 * 2
			frac[i], frac[i+1] = digitPairs[r], digitPairs[r+1]
			ns /= 100
		}
		frac[1] = byte('0' + ns)
		n := 10
		for frac[n-1] == '0' {
			n--
		}
		b = append(b, frac[:n]...)
	}
	return append(b, c.zone...)
}

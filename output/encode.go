package output

import (
	"log/slog"
	"math/bits"
	"net/netip"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/symbolize"
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

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"4041424344454647484950515253545556575859606162636465666768697071727374757677787980" +
	"81828384858687888990919293949596979899"

// appendUint appends v in decimal, as strconv.AppendUint(b, v, 10) does,
// writing the digits in place.
func appendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte('0'+v))
	}
	n := decimalLen(v)
	b = slices.Grow(b, n)
	i := len(b) + n
	b = b[:i]
	for v >= 100 {
		q := v / 100
		r := (v - q*100) * 2
		i -= 2
		b[i], b[i+1] = digitPairs[r], digitPairs[r+1]
		v = q
	}
	if v >= 10 {
		b[i-2], b[i-1] = digitPairs[v*2], digitPairs[v*2+1]
	} else {
		b[i-1] = byte('0' + v)
	}
	return b
}

// decimalLen is the number of decimal digits of v.
func decimalLen(v uint64) int {
	n := bits.Len64(v) * 1233 >> 12 // about log10(2) * bits: exact or one short
	if n < len(powersOf10) && v >= powersOf10[n] {
		n++
	}
	return max(n, 1)
}

var powersOf10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13,
	1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

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

// appendLogLine appends ev as the line log/slog's JSON handler writes for
// the Log sink's record: time, level, msg, the fields (time as event_time),
// then the hint.
func (e *encoder) appendLogLine(b []byte, now time.Time, ev *collector.Event) []byte {
	consts := e.logConstsOf(ev.Kind)
	b = append(b, `{"time":"`...)
	b = e.now.append(b, now)
	b = append(b, '"')
	b = append(b, consts.head...)
	b = e.appendFields(b, ev, true)
	b = append(b, consts.hint...)
	return append(b, '}', '\n')
}

// appendFields appends each field of ev after its key (logKeys for a log
// line, else keys), leaving out, key and all, the empty ones that are
// omitted (logOmitEmpty for a log line, else omitEmpty). Each value is
// tested before anything is written, and each type is written inline: this
// is the collector's hottest loop.
func (e *encoder) appendFields(b []byte, ev *collector.Event, log bool) []byte {
	ks := keys
	if log {
		ks = logKeys
	}
	for i := range fields {
		f := &fields[i]
		omit := f.omitEmpty
		if log {
			omit = f.logOmitEmpty
		}
		if omit && f.pod && ev.Pod == nil {
			continue
		}
		switch f.typ {
		case typTime:
			b = appendKey(b, &ks[i])
			b = e.utc.append(b, ev.Time.UTC())
			b = append(b, '"')
		case typString:
			v := f.str(ev)
			if omit && v == "" {
				continue
			}
			b = appendKey(b, &ks[i])
			b = e.appendStringRest(b, v)
		case typUint:
			v := f.num(ev)
			if omit && v == 0 {
				continue
			}
			b = appendKey(b, &ks[i])
			b = appendUint(b, v)
		case typInt:
			v := int64(f.num(ev))
			if omit && v == 0 {
				continue
			}
			b = appendKey(b, &ks[i])
			if v < 0 {
				b = append(b, '-')
				v = -v
			}
			b = appendUint(b, uint64(v))
		case typBool:
			v := f.flag(ev)
			if omit && !v {
				continue
			}
			b = appendKey(b, &ks[i])
			if v {
				b = append(b, "true"...)
			} else {
				b = append(b, "false"...)
			}
		case typStack:
			if ev.Stack == nil || len(ev.Stack.Frames) == 0 {
				continue // always omitted when empty
			}
			b = appendKey(b, &ks[i])
			if log {
				b = e.appendString(b, StackLine(ev.Stack, logStackFrames))
			} else {
				b = e.appendFrames(b, ev.Stack.Frames)
			}
		case typAddr:
			v := f.addr(ev)
			if omit && !v.IsValid() {
				continue
			}
			b = appendKey(b, &ks[i])
			if v.IsValid() {
				b = v.AppendTo(b) // digits, dots, colons and hex: nothing to escape
			}
			b = append(b, '"')
		}
	}
	return b
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
	return e.appendStringRest(append(b, '"'), s)
}

// plain[c] is true for the ASCII bytes that a JSON string holds as they
// are; htmlPlain also leaves out <, > and &, which encoding/json escapes.
var plain, htmlPlain = plainTables()

func plainTables() (plain, htmlPlain [utf8.RuneSelf]bool) {
	for c := range utf8.RuneSelf {
		plain[c] = c >= 0x20 && c != '"' && c != '\\'
		htmlPlain[c] = plain[c] && c != '<' && c != '>' && c != '&'
	}
	return plain, htmlPlain
}

// appendStringRest is appendString after the opening quote.
func (e *encoder) appendStringRest(b []byte, s string) []byte {
	keep := &plain
	if e.html {
		keep = &htmlPlain
	}
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if keep[c] {
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

// logStackFrames is how many frames a log line's stack names.
const logStackFrames = 3

// appendFrames appends frames as the JSON array encoding/json writes for
// Record.Stack.
func (e *encoder) appendFrames(b []byte, frames []symbolize.Frame) []byte {
	b = append(b, '[')
	for i := range frames {
		f := &frames[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		comma := false
		str := func(name, v string) {
			if v == "" {
				return
			}
			if comma {
				b = append(b, ',')
			}
			comma = true
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, '"', ':')
			b = e.appendString(b, v)
		}
		str("func", f.Func)
		str("file", f.File)
		if f.Line != 0 {
			if comma {
				b = append(b, ',')
			}
			comma = true
			b = append(b, `"line":`...)
			if f.Line < 0 {
				b = append(b, '-')
				b = appendUint(b, uint64(-f.Line))
			} else {
				b = appendUint(b, uint64(f.Line))
			}
		}
		str("module", f.Module)
		if comma {
			b = append(b, ',')
		}
		b = append(b, `"offset":`...)
		b = appendUint(b, f.Offset)
		comma = true
		str("build_id", f.BuildID)
		if f.JIT {
			b = append(b, `,"jit":true`...)
		}
		if f.Inlined {
			b = append(b, `,"inlined":true`...)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

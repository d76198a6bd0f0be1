package output

import (
	"io"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/symbolize"
)

// encoder is the core that the NDJSON and JSON log line formats share: it
// appends an event's fields (the contract in fields.go) as JSON, without
// reflection or allocation. Each format adds its own framing (json.go,
// log.go). It is not safe for concurrent use.
type encoder struct {
	// html: escape <, > and & and write \b and \f short, as encoding/json
	// does; otherwise escape as log/slog's JSON handler does.
	html bool
	utc  timeCache // event times, in UTC
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
			b = e.utc.append(appendKey(b, &ks[i]), ev.Time.UTC())
			b = append(b, '"')
		case typString:
			if v := f.str(ev); !omit || v != "" {
				b = e.appendStringRest(appendKey(b, &ks[i]), v)
			}
		case typUint:
			if v := f.num(ev); !omit || v != 0 {
				b = appendUint(appendKey(b, &ks[i]), v)
			}
		case typInt:
			if v := int64(f.num(ev)); !omit || v != 0 {
				b = appendInt(appendKey(b, &ks[i]), v)
			}
		case typBool:
			if v := f.flag(ev); !omit || v {
				b = strconv.AppendBool(appendKey(b, &ks[i]), v)
			}
		case typStack:
			if ev.Stack != nil && len(ev.Stack.Frames) > 0 { // always omitted when empty
				b = e.appendStack(appendKey(b, &ks[i]), ev.Stack, log)
			}
		case typAddr:
			if v := f.addr(ev); !omit || v.IsValid() {
				b = appendAddr(appendKey(b, &ks[i]), v)
			}
		}
	}
	return b
}

// appendAddr appends a's digits, dots, colons and hex (nothing to escape),
// none when a is not valid, and the closing quote.
func appendAddr(b []byte, a *netip.Addr) []byte {
	if a.IsValid() {
		b = a.AppendTo(b)
	}
	return append(b, '"')
}

// appendStack appends the stack: in a log line the top frames as a string,
// else the array of frames.
func (e *encoder) appendStack(b []byte, s *collector.Stack, log bool) []byte {
	if log {
		return e.appendString(b, StackLine(s, logStackFrames))
	}
	return e.appendFrames(b, s.Frames)
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

// appendInt appends v in decimal, as strconv.AppendInt(b, v, 10) does.
func appendInt(b []byte, v int64) []byte {
	if v < 0 {
		return appendUint(append(b, '-'), uint64(-v))
	}
	return appendUint(b, uint64(v))
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
			b = appendInt(append(b, `"line":`...), int64(f.Line))
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

// flushAt is the buffered output size that is written without waiting for
// a Flush.
const flushAt = 64 << 10

// lines holds the lines a sink appended until they are written to w in one
// piece: at a Flush, or once flushAt bytes wait.
type lines struct {
	w   io.Writer
	buf []byte
}

// flushIfFull writes the lines once flushAt bytes wait.
func (l *lines) flushIfFull() error {
	if len(l.buf) < flushAt {
		return nil
	}
	return l.flush()
}

// flush writes the lines.
func (l *lines) flush() error {
	if len(l.buf) == 0 {
		return nil
	}
	_, err := l.w.Write(l.buf)
	l.buf = l.buf[:0]
	return err
}

package output

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// Log writes each event as one structured log record: the kinds that lose
// data (DataLoss) at Warn, the others (resets, undrained and graceful
// closes) at Info. The attributes are the JSON Record's fields, in
// its order (event_time instead of time; tid and the flags always present),
// then the fix hint.
type Log struct {
	logger *slog.Logger
	fast   *LogWriter // non-nil: JSON lines appended here, bypassing slog
	enc    logEncoder
	attrs  []slog.Attr
	// The fast path's log time: read once per logClockEvery lines and at
	// the first line after a Flush, as the clock is slow to read in VMs
	// and the lines are written together at Flush anyway.
	now       time.Time
	clockLeft int
}

// logClockEvery is how many log lines share a clock reading at most.
const logClockEvery = 32

// NewLog returns a Log writing through logger.
func NewLog(logger *slog.Logger) *Log { return &Log{logger: logger} }

// NewJSONLog returns a Log for a logger whose handler is
// slog.NewJSONHandler(w, opts) with no ReplaceAttr and no AddSource. Event
// records skip slog: they are appended to w as the exact lines the handler
// would write, and w is written at Flush (other records go straight out).
func NewJSONLog(logger *slog.Logger, w *LogWriter) *Log {
	return &Log{logger: logger, fast: w}
}

var logMessages = map[collector.Kind]string{
	collector.KindUnreadClose:    "close with unread data: peer's data discarded, RST sent",
	collector.KindUndrainedClose: "close before the peer's EOF: drain skipped",
	collector.KindDataAfterClose: "peer data after close refused with RST",
	collector.KindAbortClose:     "abortive close (SO_LINGER zero): unsent data discarded",
	collector.KindResetReceived:  "connection reset by peer",
	collector.KindResetSent:      "RST sent",
	collector.KindGracefulClose:  "graceful close",
}

// DataLoss reports whether events of kind k mean data was lost: a close
// that discarded unread (unread_close) or unsent (abort_close) bytes, or the
// peer's data refused after a close (data_after_close). The daemon logs
// these at Warn; a reset alone need not lose anything.
func DataLoss(k collector.Kind) bool {
	switch k {
	case collector.KindUnreadClose, collector.KindDataAfterClose, collector.KindAbortClose:
		return true
	}
	return false
}

func logLevel(k collector.Kind) slog.Level {
	if DataLoss(k) {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// Write implements Sink.
func (l *Log) Write(ev *collector.Event) error {
	level := logLevel(ev.Kind)
	ctx := context.Background()
	if !l.logger.Enabled(ctx, level) {
		return nil
	}
	if l.fast != nil {
		if l.clockLeft == 0 {
			l.now, l.clockLeft = time.Now(), logClockEvery
		}
		l.clockLeft--
		l.fast.mu.Lock()
		defer l.fast.mu.Unlock()
		l.fast.out.buf = l.enc.appendLogLine(l.fast.out.buf, l.now, ev)
		return l.fast.out.flushIfFull()
	}
	l.attrs = appendLogAttrs(l.attrs[:0], ev)
	l.logger.LogAttrs(ctx, level, logMessages[ev.Kind], l.attrs...)
	return nil
}

// appendLogAttrs appends the attributes of ev's log record.
func appendLogAttrs(attrs []slog.Attr, ev *collector.Event) []slog.Attr {
	for i := range fields {
		f := &fields[i]
		if f.logOmitEmpty && f.isEmpty(ev) {
			continue
		}
		attrs = append(attrs, slog.Attr{Key: logName(f), Value: f.value(ev)})
	}
	if h := Hint(ev.Kind); h != "" {
		attrs = append(attrs, slog.String("hint", h))
	}
	return attrs
}

// Flush implements Sink.
func (l *Log) Flush() error {
	if l.fast == nil {
		return nil
	}
	l.clockLeft = 0
	return l.fast.Flush()
}

// logName is a field's key in log lines: the log has its own time.
func logName(f *field) string {
	if f.name == "time" {
		return "event_time"
	}
	return f.name
}

// logStackFrames is how many frames a log line's stack names.
const logStackFrames = 3

// logEncoder is the encoder with the log line's own parts.
type logEncoder struct {
	encoder
	now timeCache // log times, in the local zone (as slog writes them)
	// byKind holds, per event kind, the log line's constant parts already
	// escaped: level and message, and the hint.
	byKind [32]*logConsts
}

type logConsts struct{ head, hint []byte }

// logConstsOf returns the constant parts of kind k's log lines.
func (e *logEncoder) logConstsOf(k collector.Kind) *logConsts {
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

// appendLogLine appends ev as the line log/slog's JSON handler writes for
// the Log sink's record: time, level, msg, the fields (time as event_time),
// then the hint.
func (e *logEncoder) appendLogLine(b []byte, now time.Time, ev *collector.Event) []byte {
	consts := e.logConstsOf(ev.Kind)
	b = append(b, `{"time":"`...)
	b = e.now.append(b, now)
	b = append(b, '"')
	b = append(b, consts.head...)
	b = e.appendFields(b, ev, true)
	b = append(b, consts.hint...)
	return append(b, '}', '\n')
}

// LogWriter is the daemon's stdout: slog's handler writes each of its
// records straight through, while the Log sink's event lines are buffered
// and written in one piece per batch. Lines never interleave.
type LogWriter struct {
	mu  sync.Mutex
	out lines
}

// NewLogWriter returns a LogWriter writing to w (on a pipe, without waking
// the Go runtime's monitor thread: see pipeWriter).
func NewLogWriter(w io.Writer) *LogWriter { return &LogWriter{out: lines{w: fastWriter(w)}} }

// Write writes p, after any buffered lines.
func (lw *LogWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.out.buf = append(lw.out.buf, p...)
	if err := lw.out.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the buffered lines.
func (lw *LogWriter) Flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.out.flush()
}

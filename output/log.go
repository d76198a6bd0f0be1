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
	enc    encoder
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
		l.fast.buf = l.enc.appendLogLine(l.fast.buf, l.now, ev)
		var err error
		if len(l.fast.buf) >= flushAt {
			err = l.fast.flushLocked()
		}
		l.fast.mu.Unlock()
		return err
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

// LogWriter is the daemon's stdout: slog's handler writes each of its
// records straight through, while the Log sink's event lines are buffered
// and written in one piece per batch. Lines never interleave.
type LogWriter struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

// NewLogWriter returns a LogWriter writing to w (on a pipe, without waking
// the Go runtime's monitor thread: see pipeWriter).
func NewLogWriter(w io.Writer) *LogWriter { return &LogWriter{w: fastWriter(w)} }

// Write writes p, after any buffered lines.
func (lw *LogWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.buf = append(lw.buf, p...)
	if err := lw.flushLocked(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the buffered lines.
func (lw *LogWriter) Flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.flushLocked()
}

func (lw *LogWriter) flushLocked() error {
	if len(lw.buf) == 0 {
		return nil
	}
	_, err := lw.w.Write(lw.buf)
	lw.buf = lw.buf[:0]
	return err
}

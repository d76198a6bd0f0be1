package output

import (
	"context"
	"log/slog"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// Log writes each event as one structured log record: anomalies at Warn,
// graceful closes at Info. The attributes are the JSON Record's fields
// (event_time instead of time) plus the fix hint.
type Log struct {
	logger *slog.Logger
}

// NewLog returns a Log writing to logger.
func NewLog(logger *slog.Logger) *Log { return &Log{logger: logger} }

var logMessages = map[collector.Kind]string{
	collector.KindUnreadClose:    "close with unread data: peer's data discarded, RST sent",
	collector.KindUndrainedClose: "close before the peer's EOF: drain skipped",
	collector.KindDataAfterClose: "peer data after close refused with RST",
	collector.KindAbortClose:     "abortive close (SO_LINGER zero): unsent data discarded",
	collector.KindResetReceived:  "connection reset by peer",
	collector.KindResetSent:      "RST sent",
	collector.KindGracefulClose:  "graceful close",
}

// Write implements Sink.
func (l *Log) Write(ev *collector.Event) error {
	level := slog.LevelInfo
	if ev.Kind.Anomaly() {
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !l.logger.Enabled(ctx, level) {
		return nil
	}
	r := NewRecord(ev)
	attrs := []slog.Attr{
		slog.String("kind", r.Kind),
		slog.String("event_time", r.Time),
		slog.Uint64("pid", uint64(r.PID)),
		slog.Uint64("tid", uint64(r.TID)),
		slog.String("comm", r.Comm),
		slog.Uint64("cgroup_id", r.CgroupID),
		slog.Uint64("netns", uint64(r.Netns)),
		slog.String("family", r.Family),
		slog.String("laddr", r.LAddr),
		slog.Uint64("lport", uint64(r.LPort)),
		slog.String("raddr", r.RAddr),
		slog.Uint64("rport", uint64(r.RPort)),
		slog.Uint64("cookie", r.Cookie),
		slog.String("state", r.State),
		slog.String("reason", r.Reason),
		slog.Uint64("unread_bytes", uint64(r.UnreadBytes)),
		slog.Uint64("unsent_bytes", uint64(r.UnsentBytes)),
		slog.Uint64("refused_bytes", uint64(r.RefusedBytes)),
		slog.Bool("peer_fin", r.PeerFIN),
		slog.Bool("shut_wr", r.ShutWR),
		slog.Bool("time_wait", r.TimeWait),
		slog.Bool("no_socket", r.NoSocket),
	}
	if r.SinceCloseNs > 0 {
		attrs = append(attrs, slog.Int64("since_close_ns", r.SinceCloseNs))
	}
	for _, a := range [...]slog.Attr{slog.String("namespace", r.Namespace), slog.String("pod", r.Pod),
		slog.String("pod_uid", r.PodUID), slog.String("container", r.Container), slog.String("container_id", r.ContainerID)} {
		if a.Value.String() != "" { // as in the JSON form: only what is known
			attrs = append(attrs, a)
		}
	}
	if h := Hint(ev.Kind); h != "" {
		attrs = append(attrs, slog.String("hint", h))
	}
	l.logger.LogAttrs(ctx, level, logMessages[ev.Kind], attrs...)
	return nil
}

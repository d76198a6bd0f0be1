// Package exporter turns the kernel's exact counters and the collector's own
// counts into Prometheus metrics, read at scrape time.
package exporter

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// Source is what the exporter reads at each scrape; *collector.Collector is one.
type Source interface {
	Counters() (collector.Counters, error)
	Stats() collector.Stats
	Reasons() *collector.Reasons
	Attached() int
}

// Close kinds exported as tcpclose_closes_total{kind}.
var closeKinds = []collector.Kind{collector.KindUnreadClose, collector.KindUndrainedClose,
	collector.KindAbortClose, collector.KindGracefulClose}

// ReasonUnknown is the reason label of resets whose kernel reason is unknown.
const ReasonUnknown = "unknown"

// Exporter is a prometheus.Collector over a Source. Until a Source is set
// (the programs are not attached yet) it exports only the build info and
// tcpclose_programs_attached 0.
type Exporter struct {
	mu  sync.RWMutex
	src Source

	closes, dataAfterClose, resetsReceived, resetsSent *prometheus.Desc
	unreadBytes, unsentBytes, refusedBytes, unreadHist *prometheus.Desc
	ringLost, dropped, evictions, attached, buildInfo  *prometheus.Desc
	skippedRuns, suppressed                            *prometheus.Desc
	version                                            string
}

// New returns an Exporter; version is reported in tcpclose_build_info.
func New(version string) *Exporter {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("tcpclose_"+name, help, labels, nil)
	}
	return &Exporter{
		version: version,
		closes: d("closes_total", "TCP closes seen by the kernel programs, by kind: unread_close (close() with unread bytes, "+
			"data discarded and RST sent), undrained_close (close() before the peer's EOF), abort_close (SO_LINGER "+
			"zero), graceful_close.", "kind"),
		dataAfterClose: d("data_after_close_total", "Segments with data that arrived after an undrained close and were "+
			"answered with RST: the peer lost that data. socket: full (the kernel aborted the closed socket, counted in "+
			"TCPAbortOnData) or time_wait (its TIME_WAIT mini-socket answered).", "socket"),
		resetsReceived: d("resets_received_total", "RSTs received on connections of this host."),
		resetsSent:     d("resets_sent_total", "RSTs sent by this host, by the kernel's reset reason (unknown before Linux 6.10).", "reason"),
		unreadBytes:    d("discarded_unread_bytes_total", "Received bytes discarded unread by unread_close closes."),
		unsentBytes:    d("discarded_unsent_bytes_total", "Queued bytes discarded unsent by abortive closes."),
		refusedBytes:   d("refused_bytes_total", "Bytes of peer data refused with RST after an undrained close."),
		unreadHist:     d("unread_at_close_bytes", "Unread bytes at each unread_close."),
		ringLost: d("ring_lost_records_total", "Event records counted by the kernel but not streamed because the ring "+
			"buffer was full: logs miss them, counters do not."),
		dropped: d("events_dropped_total", "Events dropped because the log output fell behind."),
		suppressed: d("events_suppressed_total", "Events counted but not streamed (so neither logged nor in the "+
			"per-owner series) because their kind's budget of events per second (--budget) was spent.", "kind"),
		skippedRuns: d("bpf_skipped_runs_total", "Program runs the kernel skipped because a BPF program was already "+
			"running on that CPU (recursion protection, 5.12+): what they would have counted is missing from every counter."),
		evictions: d("correlation_evictions_total", "Per-socket correlation entries evicted for lack of room."),
		attached: d("programs_attached", "BPF programs attached: 0 until attached, then every program this kernel "+
			"needs (6 on most kernels)."),
		buildInfo: d("build_info", "Build information of the running tcpclose-trace; always 1.", "version", "goversion"),
	}
}

// SetSource starts (or, with nil, stops) reading src at scrape time. It
// waits for a scrape in progress, so src may be closed once it returns.
func (e *Exporter) SetSource(src Source) {
	e.mu.Lock()
	e.src = src
	e.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{e.closes, e.dataAfterClose, e.resetsReceived, e.resetsSent,
		e.unreadBytes, e.unsentBytes, e.refusedBytes, e.unreadHist, e.ringLost, e.dropped, e.evictions,
		e.skippedRuns, e.suppressed, e.attached, e.buildInfo} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(e.buildInfo, prometheus.GaugeValue, 1, e.version, runtime.Version())
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.src == nil {
		ch <- prometheus.MustNewConstMetric(e.attached, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(e.attached, prometheus.GaugeValue, float64(e.src.Attached()))
	st := e.src.Stats()
	counter(ch, e.dropped, st.SinkDropped)
	counter(ch, e.evictions, st.Evictions)
	counter(ch, e.skippedRuns, st.SkippedRuns)

	c, err := e.src.Counters()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(e.closes, err)
		return
	}
	for _, k := range closeKinds {
		counter(ch, e.closes, c.Kind(k), k.String())
	}
	counter(ch, e.dataAfterClose, c.Kind(collector.KindDataAfterClose)-c.TimeWaitRefusals, "full")
	counter(ch, e.dataAfterClose, c.TimeWaitRefusals, "time_wait")
	counter(ch, e.resetsReceived, c.Kind(collector.KindResetReceived))
	e.collectResets(ch, &c, e.src.Reasons())
	counter(ch, e.unreadBytes, c.UnreadBytes)
	counter(ch, e.unsentBytes, c.UnsentBytes)
	counter(ch, e.refusedBytes, c.RefusedBytes)
	counter(ch, e.ringLost, c.RingLost)
	for _, k := range collector.Kinds() {
		counter(ch, e.suppressed, c.Suppressed[k], k.String())
	}
	ch <- unreadHistogram(e.unreadHist, &c)
}

// collectResets exports one series per reason the kernel names (zero or
// not, so rates start from a known zero), plus any unnamed reason that
// counted, plus "unknown".
func (e *Exporter) collectResets(ch chan<- prometheus.Metric, c *collector.Counters, reasons *collector.Reasons) {
	named := make(map[int]bool)
	for _, v := range reasons.Values() {
		if int(v) < collector.ReasonUnknownSlot {
			named[int(v)] = true
		}
	}
	for v, n := range c.ResetReasons {
		switch {
		case v == collector.ReasonUnknownSlot:
			counter(ch, e.resetsSent, n, ReasonUnknown)
		case named[v] || n > 0:
			counter(ch, e.resetsSent, n, reasons.Name(uint16(v)))
		}
	}
}

// unreadHistogram converts the kernel's log2 buckets (bucket i counts values
// in [2^(i-1), 2^i)) into cumulative buckets with exact integer bounds
// le = 2^i - 1.
func unreadHistogram(desc *prometheus.Desc, c *collector.Counters) prometheus.Metric {
	buckets := make(map[float64]uint64, collector.HistBuckets)
	var cum uint64
	for i, n := range c.UnreadHist {
		cum += n
		if i > 0 {
			buckets[float64(uint64(1)<<i-1)] = cum
		}
	}
	return prometheus.MustNewConstHistogram(desc, cum, float64(c.UnreadBytes), buckets)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

// NewRegistry returns a registry holding cs and the Go runtime and process
// collectors, as one scrape serves them.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return reg, nil
}

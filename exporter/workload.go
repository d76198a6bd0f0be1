package exporter

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// OtherComm is the comm label of the workloads beyond the cap.
const OtherComm = "other"

// ByComm counts streamed anomaly events per owner command name, for at most
// a fixed number of distinct names; events of further names count under
// comm="other", so the series stay at most (limit+1) x kinds. Being fed from
// the stream, it misses what the ring lost (tcpclose_ring_lost_records_total).
type ByComm struct {
	mu     sync.Mutex
	limit  int
	counts map[commKind]uint64
	comms  map[string]bool
	desc   *prometheus.Desc
}

type commKind struct {
	comm string
	kind collector.Kind
}

// NewByComm returns a ByComm that names at most limit commands.
func NewByComm(limit int) *ByComm {
	return &ByComm{
		limit:  limit,
		counts: make(map[commKind]uint64),
		comms:  make(map[string]bool),
		desc: prometheus.NewDesc("tcpclose_anomalies_by_comm_total",
			"Streamed anomaly events by the owner's command name (capped; the rest count as comm=\"other\"; "+
				"misses ring losses).", []string{"comm", "kind"}, nil),
	}
}

// Observe counts ev if it is an anomaly.
func (b *ByComm) Observe(ev *collector.Event) {
	if !ev.Kind.Anomaly() {
		return
	}
	comm := ev.Comm
	if !ev.OwnerKnown || comm == "" {
		comm = "-"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.comms[comm] {
		if len(b.comms) >= b.limit {
			comm = OtherComm
		} else {
			b.comms[comm] = true
		}
	}
	b.counts[commKind{comm, ev.Kind}]++
}

// Describe implements prometheus.Collector.
func (b *ByComm) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// Collect implements prometheus.Collector.
func (b *ByComm) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, n := range b.counts {
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.CounterValue, float64(n), k.comm, k.kind.String())
	}
}

package exporter

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// Other is the label value that stands for the owners beyond the cap.
const Other = "other"

// ByOwner counts streamed anomaly events per owner (a command name, or a
// pod's container), for at most a fixed number of distinct owners; events
// of further owners count under the label value "other", so the series stay
// at most (limit+1) x kinds. Being fed from the stream, it misses what the
// ring lost (tcpclose_ring_lost_records_total).
type ByOwner struct {
	mu      sync.Mutex
	limit   int
	ownerOf func(*collector.Event) (owner, bool)
	labels  int // owner labels in use
	other   owner
	counts  map[ownerKind]uint64
	owners  map[owner]bool
	desc    *prometheus.Desc
}

// owner is an owner's label values; unused trailing values are empty.
type owner [3]string

type ownerKind struct {
	owner owner
	kind  collector.Kind
}

// NewByComm returns a ByOwner, tcpclose_anomalies_by_comm_total{comm,kind},
// that names at most limit commands.
func NewByComm(limit int) *ByOwner {
	return &ByOwner{
		limit:  limit,
		labels: 1,
		ownerOf: func(ev *collector.Event) (owner, bool) {
			if !ev.OwnerKnown || ev.Comm == "" {
				return owner{"-"}, true
			}
			return owner{ev.Comm}, true
		},
		other: owner{Other},
		desc: prometheus.NewDesc("tcpclose_anomalies_by_comm_total",
			"Streamed anomaly events by the owner's command name (capped; the rest count as comm=\"other\"; "+
				"misses ring losses).", []string{"comm", "kind"}, nil),
	}
}

// NewByPod returns a ByOwner,
// tcpclose_anomalies_by_pod_total{namespace,pod,container,kind}, that names
// at most limit containers; events outside pods are not counted there.
func NewByPod(limit int) *ByOwner {
	return &ByOwner{
		limit:  limit,
		labels: 3,
		ownerOf: func(ev *collector.Event) (owner, bool) {
			p := ev.Pod
			if p == nil {
				return owner{}, false
			}
			name := p.Name
			if name == "" {
				name = output.PodName(p)
			}
			return owner{p.Namespace, name, p.Container}, true
		},
		other: owner{Other, Other, Other},
		desc: prometheus.NewDesc("tcpclose_anomalies_by_pod_total",
			"Streamed anomaly events by the owner's Kubernetes pod and container (capped; the rest count "+
				"with every label \"other\"; misses ring losses).", []string{"namespace", "pod", "container", "kind"}, nil),
	}
}

// Observe counts ev if it is an anomaly.
func (b *ByOwner) Observe(ev *collector.Event) {
	if !ev.Kind.Anomaly() {
		return
	}
	o, ok := b.ownerOf(ev)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.counts == nil {
		b.counts, b.owners = make(map[ownerKind]uint64), make(map[owner]bool)
	}
	if !b.owners[o] {
		if len(b.owners) >= b.limit {
			o = b.other
		} else {
			b.owners[o] = true
		}
	}
	b.counts[ownerKind{o, ev.Kind}]++
}

// Describe implements prometheus.Collector.
func (b *ByOwner) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// Collect implements prometheus.Collector.
func (b *ByOwner) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, n := range b.counts {
		values := append(k.owner[:b.labels:b.labels], k.kind.String())
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.CounterValue, float64(n), values...)
	}
}

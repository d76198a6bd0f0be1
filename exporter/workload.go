package exporter

import (
	"cmp"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// Label values that stand for no single owner. No real name produces them:
// names become label values through LabelValue, which Go-quotes a name
// equal to a marker (and any name that is not plain printable UTF-8), and
// a quoted value starts with '"'.
const (
	// Other stands for the owners that hold no slot: every label of the
	// overflow series has this value.
	Other = "(other)"
	// Unknown is the comm label of events whose owner is not known.
	Unknown = "(unknown)"
)

// LabelValue is the label value for an owner's name s (a command, pod,
// namespace or container name): output.Printable(s), which is always valid
// UTF-8 with no control characters, or s Go-quoted when it equals a marker;
// an empty name stays empty (no label, as Prometheus reads it).
func LabelValue(s string) string {
	switch s {
	case "":
		return ""
	case Other, Unknown:
		return strconv.Quote(s)
	}
	return output.Printable(s)
}

// ByOwner counts streamed anomaly events per owner (a command name, or a
// pod's container) in at most limit named series per kind; the events of
// owners without a slot count under the overflow series (every label
// Other). Being fed from the stream, it misses what the ring lost
// (tcpclose_ring_lost_records_total).
//
// Slots go to the owners seen most. The first limit owners take the free
// slots. Further owners are tracked as candidates (at most limit of them; a
// new owner replaces the candidate seen least) while their events count
// under Other. Each scrape, after its values are read, re-ranks: a
// candidate seen more often (since it was tracked) than a slot holder takes
// that slot, ties keep the holder. From then on the newcomer's events count
// under its own series, starting from 0 (or from its old value, see below),
// and the former holder's under Other.
//
// Every series is a monotonic counter and every event is counted once: a
// holder's series stops being exported when it loses its slot, after the
// scrape that demoted it read its last value, and its value is kept while
// the owner stays tracked, so that a series whose owner wins a slot back
// continues from it. Only an owner forgotten as a candidate and then
// promoted again starts from 0, as after a restart. With several scrapers,
// those that did not make the demoting scrape miss the demoted holder's
// increments since their own last scrape.
type ByOwner struct {
	mu      sync.Mutex
	limit   int
	ownerOf func(*collector.Event) (owner, bool)
	labels  int // owner labels in use
	other   owner
	tracked map[owner]*tally // slot holders and candidates, at most 2 x limit
	slots   int              // tracked owners holding a slot
	over    [kindSlots]uint64
	desc    *prometheus.Desc
}

// owner is an owner's label values; unused trailing values are empty.
type owner [3]string

// kindSlots bounds the kinds a tally counts: every anomaly kind is below it.
const kindSlots = 8

// tally is what ByOwner knows of one tracked owner.
type tally struct {
	counts [kindSlots]uint64 // its series' values: events counted while it held a slot
	seen   uint64            // events since it was tracked, slot or not: its rank
	slot   bool
}

// NewByComm returns a ByOwner, tcpclose_anomalies_by_comm_total{comm,kind},
// that names at most limit commands.
func NewByComm(limit int) *ByOwner {
	return &ByOwner{
		limit:  limit,
		labels: 1,
		ownerOf: func(ev *collector.Event) (owner, bool) {
			if !ev.OwnerKnown {
				return owner{Unknown}, true
			}
			return owner{LabelValue(ev.Comm)}, true
		},
		other: owner{Other},
		desc: prometheus.NewDesc("tcpclose_anomalies_by_comm_total",
			"Streamed anomaly events by the owner's command name: the most frequent names have their own series, "+
				"the rest count as comm=\""+Other+"\", unknown owners as comm=\""+Unknown+"\"; misses ring losses.",
			[]string{"comm", "kind"}, nil),
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
			return owner{LabelValue(p.Namespace), LabelValue(name), LabelValue(p.Container)}, true
		},
		other: owner{Other, Other, Other},
		desc: prometheus.NewDesc("tcpclose_anomalies_by_pod_total",
			"Streamed anomaly events by the owner's Kubernetes pod and container: the most frequent containers have "+
				"their own series, the rest count with every label \""+Other+"\"; misses ring losses.",
			[]string{"namespace", "pod", "container", "kind"}, nil),
	}
}

// Observe counts ev if it is an anomaly.
func (b *ByOwner) Observe(ev *collector.Event) {
	k := ev.Kind
	if !k.Anomaly() || int(k) >= kindSlots {
		return
	}
	o, ok := b.ownerOf(ev)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit <= 0 {
		b.over[k]++ // no slot to give
		return
	}
	t := b.tracked[o]
	if t == nil {
		t = b.track(o)
	}
	t.seen++
	if t.slot {
		t.counts[k]++
	} else {
		b.over[k]++
	}
}

// track adds o: in a free slot, else as a candidate, replacing the
// candidate seen least when there are limit of them already.
func (b *ByOwner) track(o owner) *tally {
	if b.tracked == nil {
		b.tracked = make(map[owner]*tally)
	}
	t := &tally{}
	switch {
	case b.slots < b.limit:
		t.slot = true
		b.slots++
	case len(b.tracked) >= 2*b.limit:
		var victim owner
		var least *tally
		for vo, vt := range b.tracked {
			if !vt.slot && (least == nil || vt.seen < least.seen || vt.seen == least.seen && lessOwner(vo, victim)) {
				victim, least = vo, vt
			}
		}
		delete(b.tracked, victim)
	}
	b.tracked[o] = t
	return t
}

func lessOwner(a, b owner) bool {
	return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]), cmp.Compare(a[2], b[2])) < 0
}

// rerank gives the slots to the owners seen most, holders first on ties.
func (b *ByOwner) rerank() {
	if len(b.tracked) == b.slots {
		return // no candidate
	}
	type ranked struct {
		o owner
		t *tally
	}
	all := make([]ranked, 0, len(b.tracked))
	for o, t := range b.tracked {
		all = append(all, ranked{o, t})
	}
	slices.SortFunc(all, func(x, y ranked) int {
		if c := cmp.Compare(y.t.seen, x.t.seen); c != 0 {
			return c
		}
		if x.t.slot != y.t.slot {
			if x.t.slot {
				return -1
			}
			return 1
		}
		if lessOwner(x.o, y.o) {
			return -1
		}
		return 1
	})
	for i, r := range all {
		r.t.slot = i < b.limit
	}
}

// Describe implements prometheus.Collector.
func (b *ByOwner) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

// Collect implements prometheus.Collector: the slot holders' series and the
// overflow series, then a re-ranking of the slots for the next scrape.
func (b *ByOwner) Collect(ch chan<- prometheus.Metric) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for o, t := range b.tracked {
		if t.slot {
			b.collect(ch, o, &t.counts)
		}
	}
	b.collect(ch, b.other, &b.over)
	b.rerank()
}

// collect sends owner o's non-zero counts. A label value that is not valid
// makes an invalid metric of that series only; LabelValue makes none.
func (b *ByOwner) collect(ch chan<- prometheus.Metric, o owner, counts *[kindSlots]uint64) {
	for k, n := range counts {
		if n == 0 {
			continue
		}
		values := append(o[:b.labels:b.labels], collector.Kind(k).String())
		m, err := prometheus.NewConstMetric(b.desc, prometheus.CounterValue, float64(n), values...)
		if err != nil {
			m = prometheus.NewInvalidMetric(b.desc, err)
		}
		ch <- m
	}
}

package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// drainsRing hands out the records of one drain after another: each record
// is the number of an event in read order.
type drainsRing struct {
	drains [][]Event
	drain  int // the drain being read
	pos    int // the next record in it
	first  int // the number of the drain's first event
	rec    [4]byte
}

func (r *drainsRing) next() ([]byte, bool, error) {
	if r.drain >= len(r.drains) || r.pos == len(r.drains[r.drain]) {
		return nil, false, nil
	}
	r.pos++
	binary.LittleEndian.PutUint32(r.rec[:], uint32(r.first+r.pos-1))
	return r.rec[:], true, nil
}

func (r *drainsRing) release() {}

// nextDrain moves on to the next drain's records.
func (r *drainsRing) nextDrain() {
	r.first += len(r.drains[r.drain])
	r.drain, r.pos = r.drain+1, 0
}

// TestReaderOrder: live events and provisional resets interleave across
// drains; whatever is held, the events come out in the order they were
// read (which is their time order), a reset canceled by a local abort not
// at all, and no held reset later than the end of the drain after its own.
func TestReaderOrder(t *testing.T) {
	live := Event{Kind: KindUnreadClose, Cookie: 7}
	reset := func(cookie uint64) Event { return Event{Kind: KindResetReceived, Cookie: cookie, provisional: true} }
	abort := func(cookie uint64) Event {
		return Event{Kind: KindDataAfterClose, Cookie: cookie, localAbort: true}
	}
	many := func(first Event, n int) []Event {
		evs := []Event{first}
		for range n {
			evs = append(evs, live)
		}
		return evs
	}
	upTo := func(n int) []int {
		var out []int
		for i := range n {
			out = append(out, i)
		}
		return out
	}
	tests := []struct {
		name   string
		drains [][]Event // the records each drain reads
		want   [][]int   // the events (numbered in read order) released by each drain
	}{
		{"nothing held: all at once", [][]Event{{live, live}, {live}}, [][]int{{0, 1}, {2}}},
		{"a held reset keeps its place", [][]Event{{live, reset(1), live, live}, {live}, {}},
			[][]int{{0}, {1, 2, 3, 4}, nil}},
		{"a local abort cancels its reset", [][]Event{{live, reset(5), live, abort(5), live}, {}},
			[][]int{{0, 2, 3, 4}, nil}},
		{"the abort of another socket does not", [][]Event{{reset(1), abort(2), live}, {}, {}},
			[][]int{nil, {0, 1, 2}, nil}},
		{"resets held in two drains", [][]Event{{live, reset(1), live}, {reset(2), live, abort(2)}, {live}, {}},
			[][]int{{0}, {1, 2, 4, 5}, {6}, nil}},
		{"a reset read in the next drain waits for its own", [][]Event{{reset(1), live}, {live, reset(2), live}, {live}, {}},
			[][]int{nil, {0, 1, 2}, {3, 4, 5}, nil}},
		{"two resets of one socket", [][]Event{{reset(1), live, reset(1), abort(1)}, {}, {}},
			[][]int{nil, {0, 1, 3}, nil}},
		{"no cookie: not held", [][]Event{{reset(0), live}}, [][]int{{0, 1}}},
		{"stopping releases what is held", [][]Event{{live, reset(1), live}}, [][]int{{0, 1, 2}}},
		{"past maxWaiting events waiting, the resets held go", [][]Event{many(reset(1), maxWaiting+2), {}},
			[][]int{upTo(maxWaiting + 3), nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t0 := time.Unix(1_700_000_000, 0)
			var all []Event
			for _, d := range tt.drains {
				all = append(all, d...)
			}
			for i := range all {
				all[i].Time = t0.Add(time.Duration(i) * time.Microsecond)
			}
			ring := &drainsRing{drains: tt.drains}
			var dropped, decoded atomic.Uint64
			const nBatches = 1 + (maxWaiting+batchLen)/batchLen
			q := &batchQueue{full: make(chan *batch, nBatches), left: nBatches, dropped: &dropped}
			r := &reader{ring: ring, out: newOrdered(q), decoded: &decoded, join: func(*Event) {},
				decode: func(raw []byte, ev *Event) error {
					*ev = all[binary.LittleEndian.Uint32(raw)]
					return nil
				}}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var got [][]int
			released := func() []int {
				var out []int
				for len(q.full) > 0 {
					b := <-q.full
					for _, ev := range b.events {
						out = append(out, int(ev.Time.Sub(t0)/time.Microsecond))
					}
					b.events = b.events[:0]
					q.put(b)
				}
				return out
			}
			if len(tt.drains) == 1 {
				cancel()
			}
			err := r.run(ctx, func() error {
				got = append(got, released())
				ring.nextDrain()
				if ring.drain == len(tt.drains)-1 {
					cancel()
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, released())
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Errorf("released by drain %v, want %v", got, tt.want)
			}
			if decoded.Load() != uint64(len(all)) || dropped.Load() != 0 {
				t.Errorf("decoded %d, dropped %d; want %d, 0", decoded.Load(), dropped.Load(), len(all))
			}
			if o := r.out; o.nHeld != 0 || len(o.held) != 0 || o.head != len(o.waiting) {
				t.Errorf("left %d held (%d by cookie), %d waiting", o.nHeld, len(o.held), len(o.waiting)-o.head)
			}
		})
	}
}

// TestReaderStopsOnError: a malformed record ends the reader with its
// error, and what was read before it still comes out, in order.
func TestReaderStopsOnError(t *testing.T) {
	bad := errors.New("short record")
	ring := &drainsRing{drains: [][]Event{{{Cookie: 1}, {Cookie: 2, provisional: true}, {Cookie: 3}, {}}}}
	var dropped, decoded atomic.Uint64
	q := &batchQueue{full: make(chan *batch, 2), left: 2, dropped: &dropped}
	r := &reader{ring: ring, out: newOrdered(q), decoded: &decoded, join: func(*Event) {},
		decode: func(raw []byte, ev *Event) error {
			i := binary.LittleEndian.Uint32(raw)
			if i == 3 {
				return bad
			}
			*ev = ring.drains[0][i]
			return nil
		}}
	err := r.run(context.Background(), func() error { t.Fatal("waited after an error"); return nil })
	if !errors.Is(err, bad) {
		t.Fatalf("run = %v, want %v", err, bad)
	}
	close(q.full)
	var cookies []uint64
	for b := range q.full {
		for _, ev := range b.events {
			cookies = append(cookies, ev.Cookie)
		}
	}
	if want := []uint64{1, 2, 3}; !slices.Equal(cookies, want) {
		t.Errorf("released cookies %v, want %v", cookies, want)
	}
}

// BenchmarkReader times the reader's own work per record (the ring and the
// decoder are fakes): events released at once, and events that wait in
// order behind a held reset.
func BenchmarkReader(b *testing.B) {
	for _, held := range []bool{false, true} {
		name := "live"
		if held {
			name = "behind a held reset"
		}
		b.Run(name, func(b *testing.B) {
			const perDrain = 1024
			evs := make([]Event, perDrain)
			for i := range evs {
				evs[i] = Event{Kind: KindUnreadClose, Cookie: uint64(i + 1), Time: time.Unix(0, int64(i))}
			}
			if held {
				evs[0] = Event{Kind: KindResetReceived, Cookie: 1, provisional: true}
			}
			var dropped, decoded atomic.Uint64
			const nBatches = 2 * perDrain / batchLen
			q := &batchQueue{full: make(chan *batch, nBatches), left: nBatches, dropped: &dropped}
			ring := &drainsRing{drains: [][]Event{evs}}
			r := &reader{ring: ring, out: newOrdered(q), decoded: &decoded, join: func(*Event) {},
				decode: func(raw []byte, ev *Event) error {
					*ev = evs[binary.LittleEndian.Uint32(raw)]
					return nil
				}}
			b.ReportAllocs()
			for b.Loop() {
				ring.pos = 0
				if err := r.drain(1); err != nil {
					b.Fatal(err)
				}
				r.out.flush()
				for len(q.full) > 0 {
					bt := <-q.full
					bt.events = bt.events[:0]
					q.put(bt)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perDrain), "ns/event")
		})
	}
}

package collector

import (
	"sync/atomic"
	"testing"
)

func TestBatchQueue(t *testing.T) {
	tests := []struct {
		name        string
		batches     int // batches that may exist
		events      int // events added with nobody consuming
		wantSent    int // batches handed over
		wantDropped uint64
	}{
		{"fits in one batch", 2, 10, 1, 0},
		{"full batches are handed over at once", 2, 2 * batchLen, 2, 0},
		{"past the queue, events are dropped and counted", 2, 2*batchLen + 7, 2, 7},
		{"nothing added, nothing sent", 2, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dropped atomic.Uint64
			q := &batchQueue{full: make(chan *batch, tt.batches), left: tt.batches, dropped: &dropped}
			for i := range tt.events {
				ev := q.slot()
				ev.Cookie = uint64(i)
				q.commit()
			}
			q.send()
			close(q.full)
			var sent, next int
			for b := range q.full {
				sent++
				for _, ev := range b.events {
					if ev.Cookie != uint64(next) {
						t.Fatalf("event %d has cookie %d: order lost", next, ev.Cookie)
					}
					next++
				}
			}
			if sent != tt.wantSent || dropped.Load() != tt.wantDropped {
				t.Errorf("sent %d batches, dropped %d; want %d, %d", sent, dropped.Load(), tt.wantSent, tt.wantDropped)
			}
			if uint64(next)+dropped.Load() != uint64(tt.events) {
				t.Errorf("%d delivered + %d dropped != %d added", next, dropped.Load(), tt.events)
			}
		})
	}
}

// TestBatchReuse: a batch given back is the next one used (last in, first out).
func TestBatchReuse(t *testing.T) {
	var dropped atomic.Uint64
	q := &batchQueue{full: make(chan *batch, 4), left: 4, dropped: &dropped}
	a, b := q.get(), q.get()
	q.put(a)
	q.put(b)
	if got := q.get(); got != b {
		t.Errorf("got another batch than the one put back last")
	}
}

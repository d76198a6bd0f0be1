package collector

import (
	"sync"
	"sync/atomic"
)

// batchLen is how many events are handed to the sink goroutine at once.
const batchLen = 256

// batch is a run of events handed from the reader to the sink goroutine.
type batch struct{ events []Event }

// batchQueue passes batches to the sink goroutine and takes them back; the
// batches are allocated as needed, at most left more. Free batches are
// reused last in, first out, so the memory written is the memory just read
// (still in cache) rather than every batch in turn.
type batchQueue struct {
	full    chan *batch
	mu      sync.Mutex
	free    []*batch
	left    int
	cur     *batch
	scratch Event // the slot when no batch is free
	dropped *atomic.Uint64
}

func (q *batchQueue) put(b *batch) {
	q.mu.Lock()
	q.free = append(q.free, b)
	q.mu.Unlock()
}

func (q *batchQueue) get() *batch {
	q.mu.Lock()
	defer q.mu.Unlock()
	if n := len(q.free); n > 0 {
		b := q.free[n-1]
		q.free = q.free[:n-1]
		return b
	}
	if q.left == 0 {
		return nil
	}
	q.left--
	return &batch{events: make([]Event, 0, batchLen)}
}

// slot returns where the next event is to be decoded: the current batch's
// next element, so that events are written once. With no batch free (the
// sink is behind by QueueLen events) it is a scratch event, dropped on commit.
func (q *batchQueue) slot() *Event {
	if q.cur == nil {
		if q.cur = q.get(); q.cur == nil {
			return &q.scratch
		}
	}
	return &q.cur.events[:len(q.cur.events)+1][len(q.cur.events)]
}

// commit adds the event written to slot() to the batch, handing the batch
// over when it is full.
func (q *batchQueue) commit() {
	if q.cur == nil {
		q.dropped.Add(1)
		return
	}
	q.cur.events = q.cur.events[:len(q.cur.events)+1]
	if len(q.cur.events) == batchLen {
		q.send()
	}
}

// add appends a copy of ev.
func (q *batchQueue) add(ev *Event) {
	*q.slot() = *ev
	q.commit()
}

// send hands the current batch, if any, to the sink goroutine. It never
// blocks: every batch in existence fits in the channel.
func (q *batchQueue) send() {
	if q.cur != nil && len(q.cur.events) > 0 {
		q.full <- q.cur
		q.cur = nil
	}
}

package collector

import "math"

const (
	// maxProvisional bounds the reset_received events held back at once;
	// past it, a provisional reset is released like any other event.
	maxProvisional = 4096
	// maxWaiting bounds the events waiting behind held resets; past it,
	// the resets held longest are released undecided.
	maxWaiting = 16384
)

// ordered releases events to the sink's queue in time order while
// provisional resets are held back.
//
// A reset_received that may be the kernel's own abort on data after close
// (Event.provisional) is held until the data_after_close that follows at
// once on the same socket (Event.localAbort) cancels it, or until the end
// of the drain after the one that read it (or at once when the reader
// stops, or early past maxWaiting events waiting), when it is released.
//
// Time order means: events are released in ring order, the order in which
// the kernel's programs wrote their records, and a held reset keeps its
// place in it: every event read after a held reset waits until that reset
// is cancelled or released. Ring order is the order of the events' kernel
// timestamps (Event.Time) for the events of one CPU; events of two CPUs
// may come in the other order when their timestamps are closer than the
// time between taking the timestamp and reserving the record (usually a
// fraction of a microsecond). Holding delays events (by at most one drain
// period) but never reorders them.
type ordered struct {
	q *batchQueue
	// waiting holds, in ring order, the events read and not yet released
	// from index head on; its first entry has sequence number base+head.
	waiting []waiting
	head    int
	base    uint64
	// held maps the cookie of each reset held to its sequence number
	// (the latest one, should a socket have two).
	held  map[uint64]uint64
	nHeld int
}

// waiting is an event read and not yet released.
type waiting struct {
	ev Event
	// heldIn is, for a reset held back, the drain that read it; 0 for an
	// event that waits only for those before it.
	heldIn    uint64
	cancelled bool // a local abort showed the held reset was not received
}

func newOrdered(q *batchQueue) *ordered {
	return &ordered{q: q, held: make(map[uint64]uint64)}
}

// place takes ev, just decoded in q's slot in drain cycle: it is released
// at once (committed in place) when nothing waits before it and it is not
// to be held; otherwise it is copied to wait its turn.
func (o *ordered) place(ev *Event, cycle uint64) {
	switch {
	case ev.provisional && ev.Cookie != 0 && o.nHeld < maxProvisional:
		o.held[ev.Cookie] = o.base + uint64(len(o.waiting))
		o.nHeld++
		o.waiting = append(o.waiting, waiting{ev: *ev, heldIn: cycle})
		return
	case ev.localAbort:
		o.cancel(ev.Cookie)
	}
	if o.head == len(o.waiting) {
		o.q.commit()
		return
	}
	o.waiting = append(o.waiting, waiting{ev: *ev})
	if len(o.waiting)-o.head > maxWaiting {
		o.release(o.waiting[o.head].heldIn + 1)
	} else {
		o.release(0)
	}
}

// cancel drops the reset held for cookie, if any: it was the kernel's own
// abort, not a reset received.
func (o *ordered) cancel(cookie uint64) {
	seq, ok := o.held[cookie]
	if !ok {
		return
	}
	delete(o.held, cookie)
	o.nHeld--
	o.waiting[seq-o.base].cancelled = true
}

// release hands over, in order, the events at the front that may go: every
// one up to the first reset held in drain before or later and not
// cancelled. Resets held in earlier drains are released as received.
func (o *ordered) release(before uint64) {
	for ; o.head < len(o.waiting); o.head++ {
		w := &o.waiting[o.head]
		if w.cancelled {
			continue
		}
		if w.heldIn != 0 {
			if w.heldIn >= before {
				break
			}
			o.unhold(w.ev.Cookie, o.base+uint64(o.head))
		}
		o.q.add(&w.ev)
	}
	o.compact()
}

// unhold forgets the held reset with sequence number seq.
func (o *ordered) unhold(cookie, seq uint64) {
	o.nHeld--
	if o.held[cookie] == seq {
		delete(o.held, cookie)
	}
}

// compact drops the released entries from waiting once they are the most
// of it, so that it does not grow while events keep waiting.
func (o *ordered) compact() {
	if o.head == 0 || 2*o.head < len(o.waiting) {
		return
	}
	n := copy(o.waiting, o.waiting[o.head:])
	clear(o.waiting[n:])
	o.waiting = o.waiting[:n]
	o.base += uint64(o.head)
	o.head = 0
}

// expire releases what waits behind the resets held before drain cycle
// (they are released as received) and the events after them, up to the
// first reset held in this drain.
func (o *ordered) expire(cycle uint64) { o.release(cycle) }

// flush releases every event waiting, the held resets as received, and
// hands the last batch over.
func (o *ordered) flush() {
	o.release(math.MaxUint64)
	o.q.send()
}

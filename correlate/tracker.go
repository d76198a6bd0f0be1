// Package correlate keeps bounded per-socket state so that events the kernel
// reports separately (an undrained close and the reset it later causes, maybe
// from a TIME_WAIT mini-socket) are told as one story with one owner.
package correlate

import (
	"container/list"
	"time"
)

// Owner is the process a socket is attributed to.
type Owner struct {
	PID      uint32
	TID      uint32
	Comm     string
	CgroupID uint64
}

// Entry is what is remembered about one socket, by cookie.
type Entry struct {
	Cookie   uint64
	Owner    Owner
	HasOwner bool
	Closed   time.Time // time of an undrained close, zero if none
	Seen     time.Time // last event on the socket
}

// Tracker remembers sockets by cookie. State is bounded three ways: a
// finished story is forgotten, entries age out after TTL (an undrained close
// may be answered by its TIME_WAIT successor long after the socket is gone),
// and past Capacity the least recently seen entry is evicted. Not safe for
// concurrent use.
type Tracker struct {
	capacity  int
	ttl       time.Duration
	byCookie  map[uint64]*list.Element
	order     *list.List // front: least recently seen
	evictions uint64
	expired   uint64
}

// New returns a Tracker holding at most capacity sockets for at most ttl each.
func New(capacity int, ttl time.Duration) *Tracker {
	if capacity < 1 {
		capacity = 1
	}
	return &Tracker{capacity: capacity, ttl: ttl, byCookie: make(map[uint64]*list.Element), order: list.New()}
}

// Len returns the number of sockets remembered.
func (t *Tracker) Len() int { return len(t.byCookie) }

// Evictions returns how many entries were dropped for lack of room.
func (t *Tracker) Evictions() uint64 { return t.evictions }

// Expired returns how many entries aged out.
func (t *Tracker) Expired() uint64 { return t.expired }

// Get returns the entry for a cookie.
func (t *Tracker) Get(cookie uint64) (Entry, bool) {
	if el, ok := t.byCookie[cookie]; ok {
		return *el.Value.(*Entry), true
	}
	return Entry{}, false
}

// Touch records an event on a socket at now, with its owner if known, and
// returns the updated entry.
func (t *Tracker) Touch(cookie uint64, now time.Time, owner *Owner) Entry {
	t.expire(now)
	el, ok := t.byCookie[cookie]
	if !ok {
		if len(t.byCookie) >= t.capacity {
			t.remove(t.order.Front())
			t.evictions++
		}
		el = t.order.PushBack(&Entry{Cookie: cookie})
		t.byCookie[cookie] = el
	} else {
		t.order.MoveToBack(el)
	}
	e := el.Value.(*Entry)
	e.Seen = now
	if owner != nil {
		e.Owner, e.HasOwner = *owner, true
	}
	return *e
}

// MarkClosed records an undrained close of the socket at now.
func (t *Tracker) MarkClosed(cookie uint64, now time.Time, owner *Owner) {
	t.Touch(cookie, now, owner)
	t.byCookie[cookie].Value.(*Entry).Closed = now
}

// Forget drops a socket whose story is complete.
func (t *Tracker) Forget(cookie uint64) {
	if el, ok := t.byCookie[cookie]; ok {
		t.remove(el)
	}
}

func (t *Tracker) expire(now time.Time) {
	if t.ttl <= 0 {
		return
	}
	for el := t.order.Front(); el != nil; el = t.order.Front() {
		if now.Sub(el.Value.(*Entry).Seen) < t.ttl {
			return
		}
		t.remove(el)
		t.expired++
	}
}

func (t *Tracker) remove(el *list.Element) {
	delete(t.byCookie, el.Value.(*Entry).Cookie)
	t.order.Remove(el)
}

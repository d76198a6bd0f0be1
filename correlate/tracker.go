// Package correlate keeps bounded per-socket state so that events the kernel
// reports separately (an undrained close and the reset it later causes, maybe
// from a TIME_WAIT mini-socket) are told as one story with one owner.
package correlate

import (
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/lru"
)

// Owner is the process a socket is attributed to.
type Owner struct {
	PID      uint32
	TID      uint32
	Comm     string
	Thread   string
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
	ttl     time.Duration
	entries *lru.Cache[uint64, Entry] // least recently seen first
	expired uint64
}

// New returns a Tracker holding at most capacity sockets for at most ttl each.
func New(capacity int, ttl time.Duration) *Tracker {
	return &Tracker{ttl: ttl, entries: lru.New[uint64, Entry](capacity)}
}

// Len returns the number of sockets remembered.
func (t *Tracker) Len() int { return t.entries.Len() }

// Evictions returns how many entries were dropped for lack of room.
func (t *Tracker) Evictions() uint64 { return t.entries.Evictions() }

// Expired returns how many entries aged out.
func (t *Tracker) Expired() uint64 { return t.expired }

// Get returns the entry for a cookie.
func (t *Tracker) Get(cookie uint64) (Entry, bool) { return t.entries.Peek(cookie) }

// Touch records an event on a socket at now, with its owner if known, and
// returns the updated entry.
func (t *Tracker) Touch(cookie uint64, now time.Time, owner *Owner) Entry {
	return *t.touch(cookie, now, owner)
}

// MarkClosed records an undrained close of the socket at now.
func (t *Tracker) MarkClosed(cookie uint64, now time.Time, owner *Owner) {
	t.touch(cookie, now, owner).Closed = now
}

// Forget drops a socket whose story is complete.
func (t *Tracker) Forget(cookie uint64) { t.entries.Delete(cookie) }

// touch is Touch; the entry it returns is valid until the next change.
func (t *Tracker) touch(cookie uint64, now time.Time, owner *Owner) *Entry {
	if t.ttl > 0 {
		t.expired += uint64(t.entries.Expire(func(e *Entry) bool { return now.Sub(e.Seen) >= t.ttl }))
	}
	e, added := t.entries.Use(cookie)
	if added {
		e.Cookie = cookie
	}
	e.Seen = now
	if owner != nil {
		e.Owner, e.HasOwner = *owner, true
	}
	return e
}

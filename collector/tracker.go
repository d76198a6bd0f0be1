package collector

import (
	"math"
	"sync/atomic"
	"time"
)

// tracker keeps bounded per-socket state so that events the kernel reports
// separately (an undrained close and the reset it later causes, maybe from
// a TIME_WAIT mini-socket) are told as one story with one owner: it
// remembers the undrained closes of sockets by cookie (markClosed) and
// joins each later event of the socket to its close (join).
//
// State is bounded three ways: a finished story is forgotten, entries age
// out after the TTL (an undrained close may be answered by its TIME_WAIT
// successor long after the socket is gone), and past its capacity the
// oldest entry is evicted. It is kept compact, since a busy host fills it:
// an entry is 48 bytes with no pointer (the garbage collector never scans
// it), in chunks that are never copied, found through an open-addressing
// index of 4-byte slots, and the owners' names are interned and counted,
// so 65,536 remembered closes take about 4 MB (BenchmarkTrackerFull
// measures it). Only the counters are safe for concurrent use.
type tracker struct {
	ttl      int64 // nanoseconds; 0: no age limit
	capacity int
	chunks   [][]record
	used     int   // records ever handed out (the free list holds the rest)
	free     int32 // first free record, none if there is none
	oldest   int32 // none when empty
	newest   int32
	count    int
	// index maps a cookie to its record through open addressing with
	// linear probing: each slot holds a record number plus one, 0 when
	// empty; its length is a power of two, at least twice the count.
	index []int32
	names ownerNames

	// evictions counts the entries dropped for lack of room, expired
	// those aged out.
	evictions, expired atomic.Uint64
}

// newTracker returns a tracker holding at most capacity sockets (at least
// one) for at most ttl each (0: no limit).
func newTracker(capacity int, ttl time.Duration) *tracker {
	capacity = min(max(capacity, 1), math.MaxInt32/4)
	return &tracker{ttl: int64(ttl), capacity: capacity, free: none, oldest: none, newest: none,
		index: make([]int32, 64)}
}

// join joins ev with what is known of its socket. Only undrained closes
// are remembered: the data_after_close that may follow (perhaps from the
// socket's TIME_WAIT successor, after the socket itself is gone) is told
// with the close's owner, the time since it and the close itself
// (Event.UndrainedClose), and the close is forgotten. Every other event is
// joined read-only (the owner, when the kernel did not know it), so
// connection churn adds no state.
func (t *tracker) join(ev *Event) {
	if ev.Cookie == 0 {
		return
	}
	var cl Event
	switch ev.Kind {
	case KindUndrainedClose:
		t.markClosed(ev)
	case KindDataAfterClose:
		if t.closeOf(ev.Cookie, &cl) {
			ev.SinceClose = ev.Time.Sub(cl.Time)
			fillOwner(ev, &cl)
			if ev.StackID == 0 { // the refused data points at the close that skipped the drain
				ev.StackID = cl.StackID
			}
			ev.SetUndrainedClose(&cl)
			t.forget(ev.Cookie)
		}
	default:
		if !ev.OwnerKnown && t.count > 0 && t.closeOf(ev.Cookie, &cl) {
			fillOwner(ev, &cl)
		}
	}
}

// fillOwner gives ev the owner of its socket's close when the kernel did
// not know it.
func fillOwner(ev, close *Event) {
	if ev.OwnerKnown || !close.OwnerKnown {
		return
	}
	ev.PID, ev.TID, ev.Comm, ev.Thread, ev.CgroupID = close.PID, close.TID, close.Comm, close.Thread, close.CgroupID
	ev.OwnerKnown = true
}

// The flags of a remembered close.
const (
	closeShutWR    = 1 << iota // Event.ShutWR
	closeNoStorage             // Event.NoStorage
)

// closeOf sets *close to the undrained close remembered for cookie, and
// reports whether there is one: its time, owner, state, stack and flags
// (the rest is the socket's, not remembered). It changes nothing.
func (t *tracker) closeOf(cookie uint64, close *Event) bool {
	_, i := t.find(cookie)
	if i == none {
		return false
	}
	r := t.rec(i)
	*close = Event{Time: time.Unix(0, r.closed), Kind: KindUndrainedClose, Cookie: r.cookie, State: State(r.state),
		StackID: r.stack, ShutWR: r.flags&closeShutWR != 0, NoStorage: r.flags&closeNoStorage != 0}
	if r.name != 0 {
		close.OwnerKnown, close.PID, close.TID, close.Comm, close.CgroupID = true, r.pid, r.tid, t.names.get(r.name), r.cgroup
		if r.thread != 0 {
			close.Thread = t.names.get(r.thread)
		}
	}
	return true
}

// markClosed remembers the undrained close ev of socket ev.Cookie,
// replacing what was remembered of it. Entries older than the TTL at
// ev.Time age out first; then, at capacity, the oldest entry is evicted.
func (t *tracker) markClosed(ev *Event) {
	now := ev.Time.UnixNano()
	if t.ttl > 0 {
		for t.oldest != none && now-t.rec(t.oldest).closed >= t.ttl {
			t.remove(t.oldest)
			t.expired.Add(1)
		}
	}
	if _, i := t.find(ev.Cookie); i != none {
		t.remove(i)
	}
	if t.count >= t.capacity {
		t.remove(t.oldest)
		t.evictions.Add(1)
	}
	i := t.alloc()
	r := t.rec(i)
	*r = record{cookie: ev.Cookie, closed: now, state: uint8(ev.State), stack: ev.StackID, older: t.newest, newer: none}
	if ev.ShutWR {
		r.flags |= closeShutWR
	}
	if ev.NoStorage {
		r.flags |= closeNoStorage
	}
	if ev.OwnerKnown {
		r.pid, r.tid, r.cgroup, r.name = ev.PID, ev.TID, ev.CgroupID, t.names.add(ev.Comm)
		if ev.Thread != "" {
			r.thread = t.names.add(ev.Thread)
		}
	}
	if t.newest != none {
		t.rec(t.newest).newer = i
	} else {
		t.oldest = i
	}
	t.newest = i
	t.insert(ev.Cookie, i)
}

// forget drops a socket whose story is complete.
func (t *tracker) forget(cookie uint64) {
	if _, i := t.find(cookie); i != none {
		t.remove(i)
	}
}

// none marks the end of a list of records.
const none = -1

// record is one remembered close, linked to its neighbours in the order of
// the closes (or, when free, to the next free record through newer).
type record struct {
	cookie       uint64
	closed       int64 // Unix nanoseconds of the close
	cgroup       uint64
	pid, tid     uint32
	name         uint32 // index in names plus one; 0: no owner
	thread       uint32 // the thread's name likewise (mostly name's own slot); 0: none
	stack        uint32
	older, newer int32
	state, flags uint8
}

// chunkLen is how many records a chunk holds. Records live in chunks so
// that growing never copies them (a copy would leave the old array as
// garbage as large as the table).
const chunkLen = 1024

func (t *tracker) rec(i int32) *record { return &t.chunks[i/chunkLen][i%chunkLen] }

// alloc returns an unused record: a freed one, or the next one, adding a
// chunk when the last is full.
func (t *tracker) alloc() int32 {
	if i := t.free; i != none {
		t.free = t.rec(i).newer
		return i
	}
	if t.used == len(t.chunks)*chunkLen {
		t.chunks = append(t.chunks, make([]record, chunkLen))
	}
	t.used++
	return int32(t.used - 1)
}

// remove unlinks record i, drops it from the index and frees it.
func (t *tracker) remove(i int32) {
	r := t.rec(i)
	if r.older != none {
		t.rec(r.older).newer = r.newer
	} else {
		t.oldest = r.newer
	}
	if r.newer != none {
		t.rec(r.newer).older = r.older
	} else {
		t.newest = r.older
	}
	slot, _ := t.find(r.cookie)
	t.unindex(slot)
	t.names.release(r.name)
	t.names.release(r.thread)
	*r = record{older: none, newer: t.free}
	t.free = i
	t.count--
}

// home is the index slot where a cookie's probe starts (Fibonacci hashing:
// consecutive cookies spread over the table).
func (t *tracker) home(cookie uint64) int {
	return int((cookie * 0x9e3779b97f4a7c15) >> 32 & uint64(len(t.index)-1))
}

// find returns the index slot and record of cookie, or the empty slot where
// its probe ended and none.
func (t *tracker) find(cookie uint64) (int, int32) {
	mask := len(t.index) - 1
	for s := t.home(cookie); ; s = (s + 1) & mask {
		v := t.index[s]
		if v == 0 {
			return s, none
		}
		if t.rec(v-1).cookie == cookie {
			return s, v - 1
		}
	}
}

// insert indexes record i under cookie, which is not indexed, growing the
// index to keep it at most half full.
func (t *tracker) insert(cookie uint64, i int32) {
	t.count++
	if 2*t.count > len(t.index) {
		old := t.index
		t.index = make([]int32, 2*len(old))
		for _, v := range old {
			if v != 0 {
				s, _ := t.find(t.rec(v - 1).cookie)
				t.index[s] = v
			}
		}
	}
	s, _ := t.find(cookie)
	t.index[s] = i + 1
}

// unindex empties slot s and moves later slots of the same probe run back
// into the hole (backward-shift deletion: no tombstones, so lookups stay
// short however many entries come and go).
func (t *tracker) unindex(s int) {
	mask := len(t.index) - 1
	for next := (s + 1) & mask; t.index[next] != 0; next = (next + 1) & mask {
		h := t.home(t.rec(t.index[next] - 1).cookie)
		// The entry at next may fill the hole at s if its home is not
		// cyclically within (s, next].
		if (next-h)&mask >= (next-s)&mask {
			t.index[s] = t.index[next]
			s = next
		}
	}
	t.index[s] = 0
}

// ownerNames interns the owners' names, counting their users, so that each
// distinct name is stored once and only while an entry holds it.
type ownerNames struct {
	byName map[string]uint32 // name to index plus one
	slots  []nameSlot
	free   []uint32 // indexes plus one of empty slots
}

type nameSlot struct {
	s    string
	refs uint32
}

// add returns the name's index plus one, counting one more user.
func (n *ownerNames) add(s string) uint32 {
	if id, ok := n.byName[s]; ok {
		n.slots[id-1].refs++
		return id
	}
	if n.byName == nil {
		n.byName = make(map[string]uint32)
	}
	var id uint32
	if k := len(n.free); k > 0 {
		id, n.free = n.free[k-1], n.free[:k-1]
	} else {
		n.slots = append(n.slots, nameSlot{})
		id = uint32(len(n.slots))
	}
	n.slots[id-1] = nameSlot{s: s, refs: 1}
	n.byName[s] = id
	return id
}

func (n *ownerNames) get(id uint32) string { return n.slots[id-1].s }

// release counts one user less of name id (0: none), forgetting the name
// when it has no user left.
func (n *ownerNames) release(id uint32) {
	if id == 0 {
		return
	}
	slot := &n.slots[id-1]
	if slot.refs--; slot.refs == 0 {
		delete(n.byName, slot.s)
		*slot = nameSlot{}
		n.free = append(n.free, id)
	}
}

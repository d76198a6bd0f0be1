// Package lru is a map of bounded size that forgets its least recently used
// entries: at capacity, adding a key evicts the oldest entry, and entries
// can be aged out from the oldest end. The entries live in one slice,
// linked by index and reused once removed, so a cache that has reached its
// size allocates nothing per operation.
package lru

import "math"

// none marks the end of a list of slots.
const none = -1

// slot holds one entry, linked to its neighbours in recency order (or, when
// free, to the next free slot through next).
type slot[K comparable, V any] struct {
	key   K
	val   V
	older int32
	newer int32
}

// Cache maps keys to values and keeps at most its capacity of them. Not
// safe for concurrent use.
type Cache[K comparable, V any] struct {
	capacity  int
	index     map[K]int32
	slots     []slot[K, V]
	oldest    int32 // least recently used slot, none when empty
	newest    int32 // most recently used slot, none when empty
	free      int32 // first reusable slot, none if there is none
	evictions uint64
}

// New returns an empty cache that holds at most capacity entries (at least
// one, at most math.MaxInt32).
func New[K comparable, V any](capacity int) *Cache[K, V] {
	capacity = min(max(capacity, 1), math.MaxInt32)
	return &Cache[K, V]{capacity: capacity, index: make(map[K]int32), oldest: none, newest: none, free: none}
}

// Len returns the number of entries.
func (c *Cache[K, V]) Len() int { return len(c.index) }

// Evictions returns how many entries were dropped to make room.
func (c *Cache[K, V]) Evictions() uint64 { return c.evictions }

// Get returns the value of k and makes k the most recently used entry.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	i, ok := c.index[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.toNewest(i)
	return c.slots[i].val, true
}

// Peek returns the value of k and leaves the order of use as it is.
func (c *Cache[K, V]) Peek(k K) (V, bool) {
	if i, ok := c.index[k]; ok {
		return c.slots[i].val, true
	}
	var zero V
	return zero, false
}

// Put sets the value of k and makes k the most recently used entry.
func (c *Cache[K, V]) Put(k K, v V) {
	p, _ := c.Use(k)
	*p = v
}

// Use makes k the most recently used entry and returns a pointer to its
// value, for the caller to read or change in place. An absent k is added
// with the zero value (added is true), evicting the least recently used
// entry if the cache is full. The pointer is valid until the next call that
// adds or removes an entry.
func (c *Cache[K, V]) Use(k K) (val *V, added bool) {
	if i, ok := c.index[k]; ok {
		c.toNewest(i)
		return &c.slots[i].val, false
	}
	if len(c.index) >= c.capacity {
		c.remove(c.oldest)
		c.evictions++
	}
	i := c.free
	if i != none {
		c.free = c.slots[i].newer
	} else {
		i = int32(len(c.slots))
		c.slots = append(c.slots, slot[K, V]{})
	}
	c.slots[i].key = k
	c.index[k] = i
	c.linkNewest(i)
	return &c.slots[i].val, true
}

// Delete removes k; it reports whether k was there.
func (c *Cache[K, V]) Delete(k K) bool {
	i, ok := c.index[k]
	if ok {
		c.remove(i)
	}
	return ok
}

// Expire removes entries from the least recently used on, for as long as
// stale says they are; it returns how many it removed. stale must not
// change the cache.
func (c *Cache[K, V]) Expire(stale func(v *V) bool) int {
	n := 0
	for c.oldest != none && stale(&c.slots[c.oldest].val) {
		c.remove(c.oldest)
		n++
	}
	return n
}

// toNewest moves slot i to the most recently used end.
func (c *Cache[K, V]) toNewest(i int32) {
	if i == c.newest {
		return
	}
	c.unlink(i)
	c.linkNewest(i)
}

// linkNewest puts the unlinked slot i at the most recently used end.
func (c *Cache[K, V]) linkNewest(i int32) {
	s := &c.slots[i]
	s.older, s.newer = c.newest, none
	if c.newest != none {
		c.slots[c.newest].newer = i
	} else {
		c.oldest = i
	}
	c.newest = i
}

// unlink takes slot i out of the order of use.
func (c *Cache[K, V]) unlink(i int32) {
	s := &c.slots[i]
	if s.older != none {
		c.slots[s.older].newer = s.newer
	} else {
		c.oldest = s.newer
	}
	if s.newer != none {
		c.slots[s.newer].older = s.older
	} else {
		c.newest = s.older
	}
}

// remove drops the entry in slot i and frees the slot. The key and value
// are cleared so that the cache keeps nothing they point to alive.
func (c *Cache[K, V]) remove(i int32) {
	c.unlink(i)
	s := &c.slots[i]
	delete(c.index, s.key)
	*s = slot[K, V]{older: none, newer: c.free}
	c.free = i
}

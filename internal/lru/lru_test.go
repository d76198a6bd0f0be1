package lru

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// keys lists the cache's keys from the least to the most recently used,
// walking the links both ways to check they agree.
func keys[K comparable, V any](t *testing.T, c *Cache[K, V]) []K {
	t.Helper()
	var fwd, back []K
	for i := c.oldest; i != none; i = c.slots[i].newer {
		fwd = append(fwd, c.slots[i].key)
	}
	for i := c.newest; i != none; i = c.slots[i].older {
		back = append(back, c.slots[i].key)
	}
	slices.Reverse(back)
	if !slices.Equal(fwd, back) || len(fwd) != c.Len() {
		t.Fatalf("links disagree: oldest→newest %v, newest→oldest reversed %v, Len() %d", fwd, back, c.Len())
	}
	return fwd
}

func TestCache(t *testing.T) {
	tests := []struct {
		name          string
		capacity      int
		run           func(c *Cache[string, int])
		wantOrder     []string // least to most recently used
		wantEvictions uint64
	}{
		{
			name:      "put keeps insertion order",
			capacity:  3,
			run:       func(c *Cache[string, int]) { c.Put("a", 1); c.Put("b", 2); c.Put("c", 3) },
			wantOrder: []string{"a", "b", "c"},
		},
		{
			name:     "full cache evicts the least recently used",
			capacity: 2,
			run: func(c *Cache[string, int]) {
				c.Put("a", 1)
				c.Put("b", 2)
				c.Put("c", 3)
			},
			wantOrder:     []string{"b", "c"},
			wantEvictions: 1,
		},
		{
			name:     "get makes an entry the most recently used",
			capacity: 2,
			run: func(c *Cache[string, int]) {
				c.Put("a", 1)
				c.Put("b", 2)
				c.Get("a")
				c.Put("c", 3) // evicts b, not a
			},
			wantOrder:     []string{"a", "c"},
			wantEvictions: 1,
		},
		{
			name:     "peek leaves the order alone",
			capacity: 2,
			run: func(c *Cache[string, int]) {
				c.Put("a", 1)
				c.Put("b", 2)
				c.Peek("a")
				c.Put("c", 3) // evicts a
			},
			wantOrder:     []string{"b", "c"},
			wantEvictions: 1,
		},
		{
			name:     "put of a present key updates it without eviction",
			capacity: 2,
			run: func(c *Cache[string, int]) {
				c.Put("a", 1)
				c.Put("b", 2)
				c.Put("a", 10)
			},
			wantOrder: []string{"b", "a"},
		},
		{
			name:     "delete frees room",
			capacity: 2,
			run: func(c *Cache[string, int]) {
				c.Put("a", 1)
				c.Put("b", 2)
				c.Delete("a")
				c.Delete("zz") // absent: no-op
				c.Put("c", 3)
			},
			wantOrder: []string{"b", "c"},
		},
		{
			name:     "expire removes from the oldest while stale",
			capacity: 8,
			run: func(c *Cache[string, int]) {
				c.Put("a", 1)
				c.Put("b", 2)
				c.Put("c", 9)
				c.Put("d", 1) // stale too, but behind a fresh entry
				if n := c.Expire(func(v *int) bool { return *v < 5 }); n != 2 {
					panic("Expire removed the wrong number")
				}
			},
			wantOrder: []string{"c", "d"},
		},
		{
			name:     "capacity below one holds one",
			capacity: 0,
			run: func(c *Cache[string, int]) {
				c.Put("a", 1)
				c.Put("b", 2)
			},
			wantOrder:     []string{"b"},
			wantEvictions: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New[string, int](tt.capacity)
			tt.run(c)
			if got := keys(t, c); !slices.Equal(got, tt.wantOrder) {
				t.Errorf("order %v, want %v", got, tt.wantOrder)
			}
			if got := c.Evictions(); got != tt.wantEvictions {
				t.Errorf("Evictions() = %d, want %d", got, tt.wantEvictions)
			}
		})
	}
}

func TestGetPeekValues(t *testing.T) {
	c := New[int, string](4)
	c.Put(1, "one")
	c.Put(2, "two")
	c.Put(1, "uno")
	if v, ok := c.Get(1); !ok || v != "uno" {
		t.Errorf("Get(1) = %q, %v; want uno, true", v, ok)
	}
	if v, ok := c.Peek(2); !ok || v != "two" {
		t.Errorf("Peek(2) = %q, %v; want two, true", v, ok)
	}
	if v, ok := c.Get(3); ok || v != "" {
		t.Errorf("Get(3) = %q, %v; want absent", v, ok)
	}
	if v, ok := c.Peek(3); ok || v != "" {
		t.Errorf("Peek(3) = %q, %v; want absent", v, ok)
	}
}

func TestUseChangesInPlace(t *testing.T) {
	c := New[int, []int](2)
	p, added := c.Use(1)
	if !added || *p != nil {
		t.Fatalf("Use(new) = %v, %v; want the zero value, added", *p, added)
	}
	*p = append(*p, 7)
	p, added = c.Use(1)
	if added || !slices.Equal(*p, []int{7}) {
		t.Fatalf("Use(present) = %v, %v; want [7], not added", *p, added)
	}
}

// A removed entry's slot is reused and cleared: the cache never grows past
// its capacity and holds on to nothing that was removed.
func TestSlotsReusedAndCleared(t *testing.T) {
	c := New[int, *int](3)
	for i := range 100 {
		v := i
		c.Put(i, &v)
		if i%7 == 0 {
			c.Delete(i - 1)
		}
		if i%11 == 0 {
			c.Expire(func(**int) bool { return true })
		}
	}
	if len(c.slots) > 3 {
		t.Errorf("%d slots for a capacity of 3", len(c.slots))
	}
	for i := c.free; i != none; i = c.slots[i].newer {
		if s := c.slots[i]; s.val != nil || s.key != 0 {
			t.Errorf("free slot %d still holds %d: %v", i, s.key, s.val)
		}
	}
}

// model is the obvious, slow LRU: a slice from the least to the most
// recently used.
type model struct {
	capacity  int
	keys      []int
	vals      map[int]int
	evictions uint64
}

func (m *model) use(k int) {
	if i := slices.Index(m.keys, k); i >= 0 {
		m.keys = append(slices.Delete(m.keys, i, i+1), k)
		return
	}
	if len(m.keys) == m.capacity {
		delete(m.vals, m.keys[0])
		m.keys = m.keys[1:]
		m.evictions++
	}
	m.keys = append(m.keys, k)
}

// TestAgainstModel runs random operations on a cache and on the model and
// compares them after each.
func TestAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, capacity := range []int{1, 2, 5, 64} {
		c := New[int, int](capacity)
		m := &model{capacity: capacity, vals: map[int]int{}}
		for step := range 20000 {
			k := rng.IntN(3 * capacity)
			switch op := rng.IntN(6); op {
			case 0, 1:
				v := rng.Int()
				c.Put(k, v)
				m.use(k)
				m.vals[k] = v
			case 2:
				got, ok := c.Get(k)
				want, wok := m.vals[k]
				if ok != wok || got != want {
					t.Fatalf("cap %d step %d: Get(%d) = %d, %v; want %d, %v", capacity, step, k, got, ok, want, wok)
				}
				if wok {
					m.use(k)
				}
			case 3:
				got, ok := c.Peek(k)
				want, wok := m.vals[k]
				if ok != wok || got != want {
					t.Fatalf("cap %d step %d: Peek(%d) = %d, %v; want %d, %v", capacity, step, k, got, ok, want, wok)
				}
			case 4:
				_, wok := m.vals[k]
				if ok := c.Delete(k); ok != wok {
					t.Fatalf("cap %d step %d: Delete(%d) = %v, want %v", capacity, step, k, ok, wok)
				}
				if wok {
					delete(m.vals, k)
					m.keys = slices.DeleteFunc(m.keys, func(x int) bool { return x == k })
				}
			case 5:
				limit := rng.Int()
				n := c.Expire(func(v *int) bool { return *v < limit })
				want := 0
				for len(m.keys) > 0 && m.vals[m.keys[0]] < limit {
					delete(m.vals, m.keys[0])
					m.keys = m.keys[1:]
					want++
				}
				if n != want {
					t.Fatalf("cap %d step %d: Expire removed %d, want %d", capacity, step, n, want)
				}
			}
			if got := keys(t, c); !slices.Equal(got, m.keys) {
				t.Fatalf("cap %d step %d: order %v, want %v", capacity, step, got, m.keys)
			}
			if c.Evictions() != m.evictions {
				t.Fatalf("cap %d step %d: Evictions() = %d, want %d", capacity, step, c.Evictions(), m.evictions)
			}
		}
	}
}

// A full cache allocates nothing to replace, touch, look up or expire.
func TestNoAllocationsAtSize(t *testing.T) {
	c := New[uint64, [4]uint64](128)
	for k := range uint64(128) {
		c.Put(k, [4]uint64{k})
	}
	k := uint64(128)
	allocs := testing.AllocsPerRun(1000, func() {
		k++
		c.Put(k, [4]uint64{k})
		c.Get(k - 5)
		c.Peek(k - 100)
		c.Delete(k - 50)
		c.Expire(func(v *[4]uint64) bool { return v[0] < k-120 })
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round, want 0", allocs)
	}
}

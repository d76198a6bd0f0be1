package correlate

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func closeAt(at time.Time, owner *Owner) Close { return Close{Time: at, Owner: owner} }

func TestTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	owner := &Owner{PID: 42, TID: 43, Comm: "app", CgroupID: 7}
	tests := []struct {
		name          string
		run           func(tr *Tracker)
		capacity      int
		ttl           time.Duration
		wantLen       int
		wantPresent   []uint64
		wantAbsent    []uint64
		wantEvictions uint64
		wantExpired   uint64
	}{
		{
			name:        "a close is remembered",
			capacity:    4,
			run:         func(tr *Tracker) { tr.MarkClosed(1, closeAt(t0, owner)) },
			wantLen:     1,
			wantPresent: []uint64{1},
		},
		{
			name:     "capacity evicts the oldest close",
			capacity: 2,
			run: func(tr *Tracker) {
				tr.MarkClosed(1, closeAt(t0, nil))
				tr.MarkClosed(2, closeAt(t0, nil))
				tr.MarkClosed(1, closeAt(t0.Add(time.Second), nil)) // 2 is now the oldest
				tr.MarkClosed(3, closeAt(t0.Add(2*time.Second), nil))
			},
			wantLen:       2,
			wantPresent:   []uint64{1, 3},
			wantAbsent:    []uint64{2},
			wantEvictions: 1,
		},
		{
			name:     "entries age out after the TTL",
			capacity: 8,
			ttl:      time.Minute,
			run: func(tr *Tracker) {
				tr.MarkClosed(1, closeAt(t0, owner))
				tr.MarkClosed(2, closeAt(t0.Add(30*time.Second), nil))
				tr.MarkClosed(3, closeAt(t0.Add(61*time.Second), nil))
			},
			wantLen:     2,
			wantPresent: []uint64{2, 3},
			wantAbsent:  []uint64{1},
			wantExpired: 1,
		},
		{
			name:     "forget drops a finished story",
			capacity: 4,
			run: func(tr *Tracker) {
				tr.MarkClosed(1, closeAt(t0, owner))
				tr.Forget(1)
				tr.Forget(99) // unknown: no-op
			},
			wantAbsent: []uint64{1},
		},
		{
			name:     "capacity 0 holds one",
			capacity: 0,
			run: func(tr *Tracker) {
				tr.MarkClosed(1, closeAt(t0, owner))
				tr.MarkClosed(2, closeAt(t0, owner))
			},
			wantLen:       1,
			wantPresent:   []uint64{2},
			wantAbsent:    []uint64{1},
			wantEvictions: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New(tt.capacity, tt.ttl)
			tt.run(tr)
			if got := tr.Len(); got != tt.wantLen {
				t.Errorf("Len() = %d, want %d", got, tt.wantLen)
			}
			for _, c := range tt.wantPresent {
				if _, ok := tr.Get(c); !ok {
					t.Errorf("cookie %d missing", c)
				}
			}
			for _, c := range tt.wantAbsent {
				if _, ok := tr.Get(c); ok {
					t.Errorf("cookie %d still present", c)
				}
			}
			if got := tr.Evictions(); got != tt.wantEvictions {
				t.Errorf("Evictions() = %d, want %d", got, tt.wantEvictions)
			}
			if got := tr.Expired(); got != tt.wantExpired {
				t.Errorf("Expired() = %d, want %d", got, tt.wantExpired)
			}
		})
	}
}

func TestMarkClosedKeepsWhatItWasGiven(t *testing.T) {
	tr := New(4, 0)
	at := time.Unix(5, 123)
	tr.MarkClosed(9, Close{Time: at, Owner: &Owner{PID: 1, TID: 2, Comm: "a", Thread: "w", CgroupID: 3}, State: 4, Flags: 5})
	tr.MarkClosed(10, Close{Time: at, State: 1})
	want := Entry{Cookie: 9, Owner: Owner{PID: 1, TID: 2, Comm: "a", Thread: "w", CgroupID: 3}, HasOwner: true, Closed: at, State: 4, Flags: 5}
	if e, ok := tr.Get(9); !ok || e != want {
		t.Errorf("Get(9) = %+v, %v; want %+v", e, ok, want)
	}
	want = Entry{Cookie: 10, Closed: at, State: 1}
	if e, ok := tr.Get(10); !ok || e != want {
		t.Errorf("Get(10) = %+v, %v; want %+v", e, ok, want)
	}
}

func TestChurnStaysBounded(t *testing.T) {
	tr := New(100, time.Second)
	t0 := time.Unix(0, 0)
	for i := uint64(0); i < 10000; i++ {
		tr.MarkClosed(i, closeAt(t0.Add(time.Duration(i)*time.Millisecond), &Owner{Comm: fmt.Sprint("n", i%300)}))
		if tr.Len() > 100 {
			t.Fatalf("Len() = %d after %d sockets, want <= 100", tr.Len(), i)
		}
	}
	if tr.Evictions()+tr.Expired() != 10000-uint64(tr.Len()) {
		t.Fatalf("evictions %d + expired %d + len %d != 10000", tr.Evictions(), tr.Expired(), tr.Len())
	}
	if n := len(tr.names.byName); n > tr.Len() {
		t.Errorf("%d names interned for %d entries", n, tr.Len())
	}
	if len(tr.chunks) != 1 || len(tr.index) > 256 {
		t.Errorf("%d chunks and an index of %d slots for %d entries", len(tr.chunks), len(tr.index), tr.Len())
	}
}

// TestAgainstMap replays random operations against a map and a slice in
// close order: the tracker must agree with them after every step.
func TestAgainstMap(t *testing.T) {
	const capacity = 300
	rng := rand.New(rand.NewPCG(1, 2))
	tr := New(capacity, 0)
	model := map[uint64]Entry{}
	var order []uint64 // oldest first
	drop := func(c uint64) {
		delete(model, c)
		for i, o := range order {
			if o == c {
				order = append(order[:i], order[i+1:]...)
				break
			}
		}
	}
	names := []string{"a", "b", "c", "d"}
	var evicted uint64
	for step := range 200000 {
		// Cookies from a range a little larger than the capacity, with
		// neighbours and far values, so probe runs collide and wrap.
		c := uint64(rng.IntN(2*capacity)) << (rng.IntN(3) * 20)
		switch rng.IntN(3) {
		case 0, 1:
			at := time.Unix(0, int64(step))
			var o *Owner
			if rng.IntN(4) > 0 {
				o = &Owner{PID: uint32(step), Comm: names[rng.IntN(len(names))], Thread: names[rng.IntN(len(names))]}
			}
			tr.MarkClosed(c, Close{Time: at, Owner: o, State: uint8(step)})
			drop(c)
			if len(model) >= capacity {
				drop(order[0])
				evicted++
			}
			e := Entry{Cookie: c, Closed: at, State: uint8(step)}
			if o != nil {
				e.Owner, e.HasOwner = *o, true
			}
			model[c] = e
			order = append(order, c)
		case 2:
			tr.Forget(c)
			drop(c)
		}
		if tr.Len() != len(model) || tr.Evictions() != evicted {
			t.Fatalf("step %d: Len() = %d, Evictions() = %d; want %d, %d", step, tr.Len(), tr.Evictions(), len(model), evicted)
		}
		probe := uint64(rng.IntN(2*capacity)) << (rng.IntN(3) * 20)
		got, ok := tr.Get(probe)
		want, wok := model[probe]
		if ok != wok || got != want {
			t.Fatalf("step %d: Get(%d) = %+v, %v; want %+v, %v", step, probe, got, ok, want, wok)
		}
	}
	for c, want := range model {
		if got, ok := tr.Get(c); !ok || got != want {
			t.Fatalf("Get(%d) = %+v, %v; want %+v", c, got, ok, want)
		}
	}
	if n := len(tr.names.byName); n > len(names) {
		t.Errorf("%d names interned, want at most %d", n, len(names))
	}
}

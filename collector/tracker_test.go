package collector

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// owner is who closed a socket, as an event tells it.
type owner struct {
	pid, tid uint32
	comm     string
	thread   string
	cgroup   uint64
}

// closeAt returns the undrained close of socket cookie at the given time,
// by o if not nil.
func closeAt(cookie uint64, at time.Time, o *owner) *Event {
	ev := &Event{Time: at, Kind: KindUndrainedClose, Cookie: cookie}
	if o != nil {
		ev.OwnerKnown, ev.PID, ev.TID, ev.Comm, ev.Thread, ev.CgroupID = true, o.pid, o.tid, o.comm, o.thread, o.cgroup
	}
	return ev
}

// remembered returns the close remembered for cookie, if any.
func remembered(tr *tracker, cookie uint64) (Event, bool) {
	var cl Event
	ok := tr.closeOf(cookie, &cl)
	return cl, ok
}

func TestTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	o := &owner{pid: 42, tid: 43, comm: "app", cgroup: 7}
	tests := []struct {
		name          string
		run           func(tr *tracker)
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
			run:         func(tr *tracker) { tr.markClosed(closeAt(1, t0, o)) },
			wantLen:     1,
			wantPresent: []uint64{1},
		},
		{
			name:     "capacity evicts the oldest close",
			capacity: 2,
			run: func(tr *tracker) {
				tr.markClosed(closeAt(1, t0, nil))
				tr.markClosed(closeAt(2, t0, nil))
				tr.markClosed(closeAt(1, t0.Add(time.Second), nil)) // 2 is now the oldest
				tr.markClosed(closeAt(3, t0.Add(2*time.Second), nil))
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
			run: func(tr *tracker) {
				tr.markClosed(closeAt(1, t0, o))
				tr.markClosed(closeAt(2, t0.Add(30*time.Second), nil))
				tr.markClosed(closeAt(3, t0.Add(61*time.Second), nil))
			},
			wantLen:     2,
			wantPresent: []uint64{2, 3},
			wantAbsent:  []uint64{1},
			wantExpired: 1,
		},
		{
			name:     "forget drops a finished story",
			capacity: 4,
			run: func(tr *tracker) {
				tr.markClosed(closeAt(1, t0, o))
				tr.forget(1)
				tr.forget(99) // unknown: no-op
			},
			wantAbsent: []uint64{1},
		},
		{
			name:     "capacity 0 holds one",
			capacity: 0,
			run: func(tr *tracker) {
				tr.markClosed(closeAt(1, t0, o))
				tr.markClosed(closeAt(2, t0, o))
			},
			wantLen:       1,
			wantPresent:   []uint64{2},
			wantAbsent:    []uint64{1},
			wantEvictions: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(tt.capacity, tt.ttl)
			tt.run(tr)
			if got := tr.count; got != tt.wantLen {
				t.Errorf("count = %d, want %d", got, tt.wantLen)
			}
			for _, c := range tt.wantPresent {
				if _, ok := remembered(tr, c); !ok {
					t.Errorf("cookie %d missing", c)
				}
			}
			for _, c := range tt.wantAbsent {
				if _, ok := remembered(tr, c); ok {
					t.Errorf("cookie %d still present", c)
				}
			}
			if got := tr.evictions.Load(); got != tt.wantEvictions {
				t.Errorf("evictions = %d, want %d", got, tt.wantEvictions)
			}
			if got := tr.expired.Load(); got != tt.wantExpired {
				t.Errorf("expired = %d, want %d", got, tt.wantExpired)
			}
		})
	}
}

func TestMarkClosedKeepsWhatItWasGiven(t *testing.T) {
	tr := newTracker(4, 0)
	at := time.Unix(5, 123)
	full := Event{Time: at, Kind: KindUndrainedClose, Cookie: 9, OwnerKnown: true, PID: 1, TID: 2, Comm: "a", Thread: "w",
		CgroupID: 3, State: 4, ShutWR: true, NoStorage: true, StackID: 6}
	bare := Event{Time: at, Kind: KindUndrainedClose, Cookie: 10, State: 1}
	// What a close tells of its socket, not of the close, is not kept.
	given := full
	given.Netns, given.LPort, given.UnreadBytes, given.PeerFIN = 7, 80, 100, true
	tr.markClosed(&given)
	tr.markClosed(&bare)
	for _, want := range []Event{full, bare} {
		got, ok := remembered(tr, want.Cookie)
		if ok && got.Time.Equal(want.Time) {
			got.Time = want.Time
		}
		if !ok || got != want {
			t.Errorf("closeOf(%d) = %+v, %v; want %+v", want.Cookie, got, ok, want)
		}
	}
}

func TestChurnStaysBounded(t *testing.T) {
	tr := newTracker(100, time.Second)
	t0 := time.Unix(0, 0)
	for i := uint64(0); i < 10000; i++ {
		tr.markClosed(closeAt(i, t0.Add(time.Duration(i)*time.Millisecond), &owner{comm: fmt.Sprint("n", i%300)}))
		if tr.count > 100 {
			t.Fatalf("count = %d after %d sockets, want <= 100", tr.count, i)
		}
	}
	if tr.evictions.Load()+tr.expired.Load() != 10000-uint64(tr.count) {
		t.Fatalf("evictions %d + expired %d + len %d != 10000", tr.evictions.Load(), tr.expired.Load(), tr.count)
	}
	if n := len(tr.names.byName); n > tr.count {
		t.Errorf("%d names interned for %d entries", n, tr.count)
	}
	if len(tr.chunks) != 1 || len(tr.index) > 256 {
		t.Errorf("%d chunks and an index of %d slots for %d entries", len(tr.chunks), len(tr.index), tr.count)
	}
}

// TestAgainstMap replays random operations against a map and a slice in
// close order: the tracker must agree with them after every step.
func TestAgainstMap(t *testing.T) {
	const capacity = 300
	rng := rand.New(rand.NewPCG(1, 2))
	tr := newTracker(capacity, 0)
	model := map[uint64]Event{}
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
			var o *owner
			if rng.IntN(4) > 0 {
				o = &owner{pid: uint32(step), comm: names[rng.IntN(len(names))], thread: names[rng.IntN(len(names))]}
			}
			ev := closeAt(c, at, o)
			ev.State = State(step)
			tr.markClosed(ev)
			drop(c)
			if len(model) >= capacity {
				drop(order[0])
				evicted++
			}
			model[c] = *ev
			order = append(order, c)
		case 2:
			tr.forget(c)
			drop(c)
		}
		if tr.count != len(model) || tr.evictions.Load() != evicted {
			t.Fatalf("step %d: count %d, evictions %d; want %d, %d", step, tr.count, tr.evictions.Load(), len(model), evicted)
		}
		probe := uint64(rng.IntN(2*capacity)) << (rng.IntN(3) * 20)
		got, ok := remembered(tr, probe)
		want, wok := model[probe]
		if ok != wok || got != want {
			t.Fatalf("step %d: closeOf(%d) = %+v, %v; want %+v, %v", step, probe, got, ok, want, wok)
		}
	}
	for c, want := range model {
		if got, ok := remembered(tr, c); !ok || got != want {
			t.Fatalf("closeOf(%d) = %+v, %v; want %+v", c, got, ok, want)
		}
	}
	if n := len(tr.names.byName); n > len(names) {
		t.Errorf("%d names interned, want at most %d", n, len(names))
	}
}

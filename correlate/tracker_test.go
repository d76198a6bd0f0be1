package correlate

import (
	"testing"
	"time"
)

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
			name:        "touch remembers owner",
			capacity:    4,
			run:         func(tr *Tracker) { tr.Touch(1, t0, owner) },
			wantLen:     1,
			wantPresent: []uint64{1},
		},
		{
			name:     "capacity evicts the least recently seen",
			capacity: 2,
			run: func(tr *Tracker) {
				tr.Touch(1, t0, nil)
				tr.Touch(2, t0, nil)
				tr.Touch(1, t0.Add(time.Second), nil) // 2 is now the oldest
				tr.Touch(3, t0.Add(2*time.Second), nil)
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
				tr.MarkClosed(1, t0, owner)
				tr.Touch(2, t0.Add(30*time.Second), nil)
				tr.Touch(3, t0.Add(61*time.Second), nil)
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
				tr.MarkClosed(1, t0, owner)
				tr.Forget(1)
				tr.Forget(99) // unknown: no-op
			},
			wantAbsent: []uint64{1},
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

func TestMarkClosedKeepsOwnerAndTime(t *testing.T) {
	tr := New(4, 0)
	at := time.Unix(5, 0)
	tr.MarkClosed(9, at, &Owner{PID: 1, Comm: "a"})
	tr.Touch(9, at.Add(time.Second), nil) // an event without owner keeps the old one
	e, ok := tr.Get(9)
	if !ok || !e.HasOwner || e.Owner.PID != 1 || e.Owner.Comm != "a" || !e.Closed.Equal(at) {
		t.Fatalf("Get(9) = %+v, %v", e, ok)
	}
}

func TestChurnStaysBounded(t *testing.T) {
	tr := New(100, time.Second)
	t0 := time.Unix(0, 0)
	for i := uint64(0); i < 10000; i++ {
		tr.MarkClosed(i, t0.Add(time.Duration(i)*time.Millisecond), nil)
		if tr.Len() > 100 {
			t.Fatalf("Len() = %d after %d sockets, want <= 100", tr.Len(), i)
		}
	}
	if tr.Evictions()+tr.Expired() != 10000-uint64(tr.Len()) {
		t.Fatalf("evictions %d + expired %d + len %d != 10000", tr.Evictions(), tr.Expired(), tr.Len())
	}
}

package collector

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// The collector calls the tracker once per event with a cookie: these
// benchmarks replay its patterns on a tracker of the default size
// (collector.Options: 65536 sockets, 2 minutes).
const (
	benchCapacity = 65536
	benchTTL      = 2 * time.Minute
)

var benchOwner = &owner{pid: 4242, tid: 4243, comm: "bench-closer", cgroup: 99}

// fill returns a tracker holding the undrained closes of sockets 1 to
// filled, one a microsecond, and the time of the last.
func fill(capacity, filled int, ttl time.Duration) (*tracker, time.Time) {
	tr := newTracker(capacity, ttl)
	now := time.Unix(1_700_000_000, 0)
	for i := range filled {
		now = now.Add(time.Microsecond)
		tr.markClosed(closeAt(uint64(i+1), now, benchOwner))
	}
	return tr, now
}

// closeNew times b.N undrained closes of new sockets, one a microsecond,
// each followed by then if not nil, on a tracker already holding filled
// sockets, and returns the tracker.
func closeNew(b *testing.B, capacity, filled int, ttl time.Duration, then func(tr *tracker, cookie uint64)) *tracker {
	tr, now := fill(capacity, filled, ttl)
	cookie := uint64(filled)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cookie++
		now = now.Add(time.Microsecond)
		tr.markClosed(closeAt(cookie, now, benchOwner))
		if then != nil {
			then(tr, cookie)
		}
	}
	return tr
}

// BenchmarkTrackerChurn: undrained closes of new sockets into a full
// tracker, each evicting the least recently seen (connection churn).
func BenchmarkTrackerChurn(b *testing.B) {
	tr := closeNew(b, benchCapacity, benchCapacity, benchTTL, nil)
	if tr.count != benchCapacity {
		b.Fatalf("count = %d, want %d", tr.count, benchCapacity)
	}
}

// BenchmarkTrackerExpire: undrained closes whose predecessors age out, so
// that each close expires one entry (a steady rate under the TTL).
func BenchmarkTrackerExpire(b *testing.B) {
	const live = 1024
	tr := closeNew(b, live, live, live*time.Microsecond, nil)
	if tr.count > live || tr.expired.Load() == 0 {
		b.Fatalf("count = %d, Expired() = %d: nothing aged out", tr.count, tr.expired.Load())
	}
}

// BenchmarkTrackerStory: an undrained close, then the data after it: the
// entry is read and forgotten (the story is complete).
func BenchmarkTrackerStory(b *testing.B) {
	closeNew(b, benchCapacity, benchCapacity/2, benchTTL, func(tr *tracker, cookie uint64) {
		if e, ok := remembered(tr, cookie); !ok || !e.OwnerKnown {
			b.Fatalf("closeOf(%d) = %+v, %v", cookie, e, ok)
		}
		tr.forget(cookie)
	})
}

// BenchmarkTrackerLookup: events joined read-only, half of them on sockets
// the tracker knows.
func BenchmarkTrackerLookup(b *testing.B) {
	tr, _ := fill(benchCapacity, benchCapacity, benchTTL)
	var hits int
	var cl Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if tr.closeOf(uint64(i%(2*benchCapacity))+1, &cl) {
			hits++
		}
	}
	if b.N >= 2*benchCapacity && hits == 0 {
		b.Fatal("no lookup found its socket")
	}
}

// BenchmarkTrackerFull fills a tracker of the default size to capacity,
// with owners of 64 distinct names, and reports the heap it holds per entry
// (bytes/entry) and in all (MB-full): the worst case of a host whose
// undrained closes are never answered, which the tracer's memory bound
// rests on.
func BenchmarkTrackerFull(b *testing.B) {
	owners := make([]owner, 64)
	for i := range owners {
		owners[i] = owner{pid: uint32(1000 + i), tid: uint32(1000 + i), comm: fmt.Sprintf("server-%d", i), cgroup: uint64(i)}
	}
	var held uint64
	b.ReportAllocs()
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		tr := newTracker(benchCapacity, benchTTL)
		now := time.Unix(1_700_000_000, 0)
		for i := range benchCapacity + benchCapacity/2 { // past capacity: evictions too
			now = now.Add(time.Microsecond)
			ev := closeAt(uint64(i+1), now, &owners[i%len(owners)])
			ev.State = 1
			tr.markClosed(ev)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if tr.count != benchCapacity {
			b.Fatalf("count = %d, want %d", tr.count, benchCapacity)
		}
		held = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(tr)
	}
	b.ReportMetric(float64(held)/benchCapacity, "bytes/entry")
	b.ReportMetric(float64(held)/(1<<20), "MB-full")
}

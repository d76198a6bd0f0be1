package kubepods

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/lru"
)

// fakeClock is a clock the test moves and the watch's goroutines read.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// newWatchedResolver returns a resolver of a directory tree standing in for
// the cgroup hierarchy (inotify and inode numbers work the same on any
// file system), watching it.
func newWatchedResolver(t *testing.T, size int, grace time.Duration) (*Resolver, string, Sources, *fakeClock) {
	t.Helper()
	root := t.TempDir()
	dir := t.TempDir()
	src := Sources{Containerd: dir + "/containerd", Kubelet: dir + "/kubelet"}
	clock := &fakeClock{}
	clock.ns.Store(time.Unix(1_700_000_000, 0).UnixNano())
	r := &Resolver{root: root, sources: src, cache: lru.New[uint64, cached](size), scan: scanPods,
		now: clock.now, size: size, grace: grace}
	if err := r.Watch(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r, root, src, clock
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mkPod creates the cgroup of container c of pod uid (and its parents), with
// its containerd state, and returns its id.
func mkPod(t *testing.T, root string, src Sources, podUID, c string, m Meta) uint64 {
	t.Helper()
	writeBundle(t, src.Containerd, c, m)
	p := filepath.Join(root, containerdPath(podUID, c))
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	return inode(t, p)
}

// TestWatchShortLivedContainer: a container whose cgroup and runtime state
// are gone before its event is resolved still resolves, for the grace; then
// it is forgotten.
func TestWatchShortLivedContainer(t *testing.T) {
	const grace = time.Minute
	r, root, src, clock := newWatchedResolver(t, 64, grace)
	m := Meta{Namespace: "batch", Pod: "job-1", PodUID: uid, Container: "worker"}
	id := mkPod(t, root, src, uid, cid, m)
	waitFor(t, "the new container learned", func() bool { return r.Stats().Learned >= 4 }) // 3 slices and the scope
	at := clock.now()

	// The container exits: its state and its cgroup go.
	removeBundle(t, src.Containerd, cid)
	if err := os.Remove(filepath.Join(root, containerdPath(uid, cid))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal seen", func() bool { return r.Stats().Gone >= 1 })
	want := collector.PodInfo{Namespace: "batch", Name: "job-1", UID: uid, Container: "worker", ContainerID: cid}
	clock.advance(grace - time.Second)
	if got := r.Lookup(id, at); got == nil || *got != want {
		t.Fatalf("Lookup(removed container, within the grace) = %+v, want %+v", got, want)
	}
	if s := r.Stats(); s.Scans != 0 {
		t.Errorf("%d scans for a cgroup the watch knew, want 0", s.Scans)
	}

	clock.advance(time.Second)
	if got := r.Lookup(id, at); got != nil {
		t.Errorf("Lookup(removed container, after the grace) = %+v, want nil", got)
	}
	if s := r.Stats(); s.Expired != 1 {
		t.Errorf("%d cgroups expired, want 1", s.Expired)
	}
}

// TestWatchExisting: pods there before the watch began are resolved by its
// first walk, and their removal is seen too.
func TestWatchExisting(t *testing.T) {
	root := t.TempDir()
	dir := t.TempDir()
	src := Sources{Containerd: dir + "/containerd"}
	id := mkPod(t, root, src, uid, cid, Meta{Namespace: "a", Pod: "b", PodUID: uid, Container: "c"})
	if err := os.MkdirAll(filepath.Join(root, "system.slice", "ssh.service"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &Resolver{root: root, sources: src, cache: lru.New[uint64, cached](16), scan: scanPods,
		now: time.Now, size: 16, grace: time.Hour}
	if r.HasPods() != true {
		t.Error("HasPods() = false before the watch, with a kubepods tree")
	}
	if err := r.Watch(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Watch(); err == nil {
		t.Error("a second Watch succeeded")
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("a second Close: %v", err)
		}
	})
	s := r.Stats()
	// Followed: the root, the three kubepods slices and the scope; not system.slice.
	if s.Learned != 4 || s.Watches != 5 {
		t.Errorf("learned %d cgroups with %d watches, want 4 and 5", s.Learned, s.Watches)
	}
	if !r.HasPods() {
		t.Error("HasPods() = false")
	}
	removeBundle(t, src.Containerd, cid)
	if err := os.Remove(filepath.Join(root, containerdPath(uid, cid))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the removal seen", func() bool { return r.Stats().Gone == 1 })
	if got := r.Lookup(id, time.Now()); got == nil || got.Container != "c" {
		t.Errorf("Lookup(removed container) = %+v", got)
	}
}

// TestWatchBounded: the watch follows at most the cache's size of
// directories, the cache stays at its size, and so does the queue of
// removals.
func TestWatchBounded(t *testing.T) {
	const size = 8
	r, root, src, _ := newWatchedResolver(t, size, time.Hour)
	for i := range 20 {
		c := fmt.Sprintf("%02x", i) + cid[2:]
		mkPod(t, root, src, uid, c, Meta{Namespace: "ns", Pod: "p", PodUID: uid, Container: "c"})
	}
	waitFor(t, "the watch at its limit", func() bool { return r.Stats().Watches == size })
	time.Sleep(50 * time.Millisecond) // let any further event come
	s := r.Stats()
	if s.Watches != size || s.Cached > size {
		t.Errorf("%d watches, %d cached, want both at most %d", s.Watches, s.Cached, size)
	}
	// Remove everything: the queue of removals stays within the size.
	if err := os.RemoveAll(filepath.Join(root, "kubepods.slice")); err != nil {
		// RemoveAll removes the leaves first: a cgroup tree comes down the same way.
		t.Fatal(err)
	}
	waitFor(t, "the removals seen", func() bool { return r.Stats().Watches == 1 })
	r.mu.Lock()
	queued := len(r.removed)
	r.mu.Unlock()
	if queued > size {
		t.Errorf("%d removals queued, more than the size %d", queued, size)
	}
}

// TestExpireQueue: removals expire in order, after the grace, and no more
// than the cache's size of them wait.
func TestExpireQueue(t *testing.T) {
	clock := &fakeClock{}
	r := &Resolver{cache: lru.New[uint64, cached](3), now: clock.now, size: 3, grace: 10 * time.Second}
	for id := uint64(1); id <= 3; id++ {
		r.cache.Put(id, cached{pod: &collector.PodInfo{UID: uid}})
	}
	tests := []struct {
		name    string
		advance time.Duration
		gone    uint64 // marked removed now (0: none)
		cached  int
		queued  int
	}{
		{"first removal", 0, 1, 3, 1},
		{"second, 5 s later", 5 * time.Second, 2, 3, 2},
		{"unknown id: not queued", 0, 99, 3, 2},
		{"twice: queued once", 0, 2, 3, 2},
		{"first past its grace", 5 * time.Second, 0, 2, 1},
		{"third", time.Second, 3, 2, 2},
		{"all past their grace", time.Minute, 0, 0, 0},
	}
	for _, tt := range tests {
		clock.advance(tt.advance)
		if tt.gone != 0 {
			r.markGone(tt.gone)
		}
		r.mu.Lock()
		r.expire(clock.now())
		cached, queued := r.cache.Len(), len(r.removed)
		r.mu.Unlock()
		if cached != tt.cached || queued != tt.queued {
			t.Errorf("%s: %d cached, %d queued; want %d and %d", tt.name, cached, queued, tt.cached, tt.queued)
		}
	}
}

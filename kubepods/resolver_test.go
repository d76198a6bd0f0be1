package kubepods

import (
	"fmt"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/lru"
)

// fakeNode is a cgroup hierarchy and runtime state a test can change.
type fakeNode struct {
	paths map[uint64]string
	scans int
	now   time.Time
}

func newTestResolver(t testing.TB, size int) (*Resolver, *fakeNode, Sources) {
	t.Helper()
	dir := t.TempDir()
	src := Sources{Containerd: dir + "/containerd", Kubelet: dir + "/kubelet"}
	node := &fakeNode{paths: map[uint64]string{}, now: time.Unix(1_700_000_000, 0)}
	r := &Resolver{root: "/fake", sources: src, cache: lru.New[uint64, cached](size),
		scan: func(string) (map[uint64]string, error) {
			node.scans++
			m := make(map[uint64]string, len(node.paths))
			for k, v := range node.paths {
				m[k] = v
			}
			return m, nil
		},
		now: func() time.Time { return node.now },
	}
	return r, node, src
}

func containerdPath(podUID, containerID string) string {
	sd := []byte(podUID)
	for i, c := range sd {
		if c == '-' {
			sd[i] = '_'
		}
	}
	return "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + string(sd) + ".slice/cri-containerd-" + containerID + ".scope"
}

func TestResolverLookup(t *testing.T) {
	r, node, src := newTestResolver(t, 16)
	web := Meta{Namespace: "shop", Pod: "web-1", PodUID: uid, Container: "nginx"}
	writeBundle(t, src.Containerd, cid, web)
	node.paths[100] = containerdPath(uid, cid)
	node.paths[101] = "/kubepods.slice/kubepods-burstable.slice" // a QoS cgroup
	want := collector.PodInfo{Namespace: "shop", Name: "web-1", UID: uid, Container: "nginx", ContainerID: cid}

	at := node.now.Add(-time.Millisecond)
	node.now = node.now.Add(time.Millisecond)
	if got := r.Lookup(100, at); got == nil || *got != want {
		t.Fatalf("Lookup(pod cgroup) = %+v, want %+v", got, want)
	}
	if got := r.Lookup(101, at); got != nil {
		t.Errorf("Lookup(QoS cgroup) = %+v, want nil", got)
	}
	if got := r.Lookup(7, at); got != nil {
		t.Errorf("Lookup(host cgroup) = %+v, want nil", got)
	}
	if node.scans != 1 {
		t.Errorf("%d scans for cgroups the first scan covered, want 1", node.scans)
	}

	// A cgroup created after the last scan started makes a new scan.
	other := "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f1"
	cid2 := "1" + cid[1:]
	writeBundle(t, src.Containerd, cid2, Meta{Namespace: "shop", Pod: "web-2", PodUID: other, Container: "nginx"})
	node.paths[200] = containerdPath(other, cid2)
	node.now = node.now.Add(time.Second)
	if got := r.Lookup(200, node.now.Add(-time.Millisecond)); got == nil || got.Name != "web-2" {
		t.Errorf("Lookup(new pod) = %+v, want web-2", got)
	}
	if node.scans != 2 {
		t.Errorf("%d scans after a new cgroup, want 2", node.scans)
	}
	// An unknown id from before that scan is gone: remembered, no new scan.
	for range 3 {
		if got := r.Lookup(300, node.now.Add(-2*time.Millisecond)); got != nil {
			t.Errorf("Lookup(gone cgroup) = %+v, want nil", got)
		}
	}
	if node.scans != 2 {
		t.Errorf("%d scans after lookups of a gone cgroup, want 2", node.scans)
	}

	// The pod goes away: its cgroup and its runtime state vanish, and it
	// still resolves for its late events.
	delete(node.paths, 100)
	removeBundle(t, src.Containerd, cid)
	node.now = node.now.Add(time.Minute)
	if got := r.Lookup(100, node.now); got == nil || *got != want {
		t.Errorf("Lookup(pod gone) = %+v, want %+v", got, want)
	}
}

func TestResolverBounded(t *testing.T) {
	r, node, src := newTestResolver(t, 2)
	for i, id := range []uint64{1, 2, 3} {
		c := string(rune('a'+i)) + cid[1:]
		writeBundle(t, src.Containerd, c, Meta{Namespace: "ns", Pod: "p", PodUID: uid, Container: "c"})
		node.paths[id] = containerdPath(uid, c)
	}
	at := node.now
	node.now = node.now.Add(time.Second)
	for _, id := range []uint64{1, 2, 3} {
		if r.Lookup(id, at) == nil {
			t.Fatalf("Lookup(%d) = nil", id)
		}
	}
	if n := r.Stats().Cached; n != 2 {
		t.Errorf("cache holds %d cgroups, want its capacity 2", n)
	}
	// The least recently used (1) was forgotten: once its cgroup is gone
	// (and a later scan has seen that) it no longer resolves.
	delete(node.paths, 1)
	node.now = node.now.Add(time.Second)
	r.Lookup(4, node.now.Add(-time.Millisecond)) // unknown: a new scan
	if got := r.Lookup(1, at); got != nil {
		t.Errorf("evicted, gone cgroup resolved to %+v", got)
	}
}

func TestResolverPartial(t *testing.T) {
	r, node, src := newTestResolver(t, 16)
	node.paths[5] = containerdPath(uid, cid)
	// No runtime state yet; the kubelet's directory names the pod.
	if err := writeKubelet(src.Kubelet, Meta{PodUID: uid, Pod: "job-x", Namespace: "batch"}); err != nil {
		t.Fatal(err)
	}
	at := node.now
	node.now = node.now.Add(time.Millisecond)
	want := collector.PodInfo{Namespace: "batch", Name: "job-x", UID: uid, ContainerID: cid}
	if got := r.Lookup(5, at); got == nil || *got != want {
		t.Fatalf("Lookup(no runtime state) = %+v, want %+v", got, want)
	}
	writeBundle(t, src.Containerd, cid, Meta{Namespace: "batch", Pod: "job-x", PodUID: uid, Container: "worker"})
	if got := r.Lookup(5, at); got == nil || got.Container != "" {
		t.Errorf("partial result re-read before %v: %+v", retryPartial, got)
	}
	node.now = node.now.Add(retryPartial)
	want.Container = "worker"
	if got := r.Lookup(5, at); got == nil || *got != want {
		t.Errorf("Lookup after %v = %+v, want %+v", retryPartial, got, want)
	}
}

func TestResolverEnrich(t *testing.T) {
	r, node, src := newTestResolver(t, 16)
	writeBundle(t, src.Containerd, cid, Meta{Namespace: "a", Pod: "b", PodUID: uid, Container: "c"})
	node.paths[9] = containerdPath(uid, cid)
	node.now = node.now.Add(time.Second)
	tests := []struct {
		name string
		ev   collector.Event
		want bool
	}{
		{"owner in a pod", collector.Event{OwnerKnown: true, CgroupID: 9}, true},
		{"owner unknown", collector.Event{CgroupID: 9}, false},
		{"no cgroup", collector.Event{OwnerKnown: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			r.Enrich(&ev)
			if (ev.Pod != nil) != tt.want {
				t.Errorf("Pod = %+v, want set: %v", ev.Pod, tt.want)
			}
		})
	}
}

// BenchmarkResolverLookupCached: events of a node's pods, every cgroup
// already resolved (the cache's hot path: one hit per event).
func BenchmarkResolverLookupCached(b *testing.B) {
	const pods = 64
	r, node, src := newTestResolver(b, 16384)
	for i := range pods {
		c := fmt.Sprintf("%02x", i) + cid[2:]
		writeBundle(b, src.Containerd, c, Meta{Namespace: "ns", Pod: fmt.Sprintf("p%d", i), PodUID: uid, Container: "c"})
		node.paths[uint64(1000+i)] = containerdPath(uid, c)
	}
	at := node.now
	node.now = node.now.Add(time.Second)
	for i := range pods {
		if r.Lookup(uint64(1000+i), at) == nil {
			b.Fatalf("Lookup(%d) = nil", 1000+i)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if r.Lookup(uint64(1000+i%pods), at) == nil {
			b.Fatal("cached pod not found")
		}
	}
	if node.scans != 1 {
		b.Fatalf("%d scans, want 1", node.scans)
	}
}

package kubepods

import (
	"fmt"
	"sync"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/lru"
)

// Config says where the resolver looks.
type Config struct {
	CgroupRoot string  // the cgroup v2 mount; "" finds it (FindCgroupRoot)
	Sources    Sources // where names come from
	CacheSize  int     // cgroups remembered, pods gone included; 0 for 16384
}

// retryPartial is how long a pod whose names could not be read (its
// runtime's state not written yet, say) is served as it is before the
// names are read again.
const retryPartial = 5 * time.Second

// cached is a resolution: pod nil means "not in a pod".
type cached struct {
	pod     *collector.PodInfo
	partial bool
	at      time.Time
}

// Resolver maps cgroup ids to pods. Results are kept in a bounded cache, so
// a pod that is gone still resolves for events that arrive after it (a
// peer's data after the close, say), until newer cgroups push it out. Safe
// for concurrent use.
type Resolver struct {
	root    string
	sources Sources
	scan    func(root string) (map[uint64]string, error)
	now     func() time.Time

	mu       sync.Mutex
	cache    *lru.Cache[uint64, cached]
	paths    map[uint64]string // kubepods cgroups found by the last scan
	scanned  time.Time         // when the last scan started
	scans    uint64
	scanErrs uint64
}

// New returns a Resolver for the hierarchy at cfg.CgroupRoot.
func New(cfg Config) (*Resolver, error) {
	root := cfg.CgroupRoot
	if root == "" {
		var err error
		if root, err = FindCgroupRoot(); err != nil {
			return nil, err
		}
	} else if !IsCgroup2(root) {
		return nil, fmt.Errorf("cgroup root %s is not a cgroup v2 mount", root)
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = 16384
	}
	return &Resolver{root: root, sources: cfg.Sources, cache: lru.New[uint64, cached](size), scan: scanPods, now: time.Now}, nil
}

// Root returns the cgroup v2 mount the resolver reads.
func (r *Resolver) Root() string { return r.root }

// Enrich sets ev.Pod from the cgroup the kernel recorded for the owner.
func (r *Resolver) Enrich(ev *collector.Event) {
	if ev.OwnerKnown && ev.CgroupID != 0 {
		ev.Pod = r.Lookup(ev.CgroupID, ev.Time)
	}
}

// Lookup returns the pod of cgroup id, or nil when it is not in a pod. at
// is when the kernel saw the cgroup. A cgroup the last scan did not find
// causes a new scan, unless that scan started after at; one that a scan
// started after at does not find is gone or not a pod's, and is remembered
// as such. So each cgroup costs at most one scan.
func (r *Resolver) Lookup(id uint64, at time.Time) *collector.PodInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, hit := r.cache.Get(id)
	if hit && !c.partial {
		return c.pod // the common case: no clock read (slow in VMs) per event
	}
	now := r.now()
	if hit && now.Sub(c.at) < retryPartial {
		return c.pod
	}
	path, ok := r.paths[id]
	if !ok {
		covered := r.scanned.After(at)
		if !covered && r.rescan(now) {
			covered = true
			path, ok = r.paths[id]
		}
		if !ok {
			if covered {
				r.cache.Put(id, cached{at: now})
			}
			return nil
		}
	}
	pod, partial := r.resolve(path)
	r.cache.Put(id, cached{pod: pod, partial: partial, at: now})
	return pod
}

// rescan replaces the known kubepods cgroups with a fresh scan's; it
// reports whether the scan succeeded.
func (r *Resolver) rescan(now time.Time) bool {
	paths, err := r.scan(r.root)
	r.scans++
	if err != nil {
		r.scanErrs++
		return false
	}
	r.paths, r.scanned = paths, now
	return true
}

// resolve names the pod of a kubepods cgroup path; partial means some names
// could not be read.
func (r *Resolver) resolve(path string) (pod *collector.PodInfo, partial bool) {
	info, ok := ParseCgroupPath(path)
	if !ok {
		return nil, false // a QoS or kubepods cgroup itself: no pod
	}
	pod = &collector.PodInfo{UID: info.PodUID, ContainerID: info.ContainerID}
	var m Meta
	ok = false
	if info.ContainerID != "" {
		m, ok = r.sources.Container(info.ContainerID, info.Runtime)
	}
	if !ok {
		m, ok = r.sources.Pod(info.PodUID)
		partial = true
	}
	if ok {
		pod.Namespace, pod.Name, pod.Container = m.Namespace, m.Pod, m.Container
	}
	return pod, partial
}

// ResolverStats are the resolver's own counts.
type ResolverStats struct {
	Cached     int    // cgroups in the cache
	Scans      uint64 // walks of the hierarchy
	ScanErrors uint64 // walks that failed
}

// Stats returns the resolver's counts.
func (r *Resolver) Stats() ResolverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ResolverStats{Cached: r.cache.Len(), Scans: r.scans, ScanErrors: r.scanErrs}
}

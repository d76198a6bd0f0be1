package kubepods

import (
	"fmt"
	"path/filepath"
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
	// Grace is how long a pod's cgroup still resolves once the watch
	// (Watch) has seen it removed: the events of its last connections
	// may come later (a peer's data up to tcp_fin_timeout after the
	// close, a reader that fell behind). 0 for DefaultGrace.
	Grace time.Duration
}

// DefaultGrace is how long a removed pod cgroup stays known: TIME_WAIT and
// FIN_WAIT2 last 60 s, plus a margin for a reader that fell behind.
const DefaultGrace = 2 * time.Minute

// retryPartial is how long a pod whose names could not be read (its
// runtime's state not written yet, say) is served as it is before the
// names are read again.
const retryPartial = 5 * time.Second

// cached is a resolution: pod nil means "not in a pod".
type cached struct {
	pod     *collector.PodInfo
	partial bool
	gone    bool      // the watch saw the cgroup removed
	at      time.Time // when resolved
	path    string    // the cgroup's path, to read a partial pod's names again
}

// removal is a cgroup the watch saw removed, at a time.
type removal struct {
	id uint64
	at time.Time
}

// Resolver maps cgroup ids to pods. Results are kept in a bounded cache, so
// a pod that is gone still resolves for events that arrive after it (a
// peer's data after the close, say). With Watch running, pod cgroups are
// resolved as they appear, while the cgroup and the runtime's state exist,
// and forgotten Grace after they are removed; without it, on their first
// event, and forgotten when newer cgroups push them out. Safe for
// concurrent use.
type Resolver struct {
	root    string
	sources Sources
	scan    func(root string) (map[uint64]string, error)
	now     func() time.Time
	size    int
	grace   time.Duration

	mu       sync.Mutex
	cache    *lru.Cache[uint64, cached]
	paths    map[uint64]string // kubepods cgroups found by the last scan
	scanned  time.Time         // when the last scan started
	removed  []removal         // cgroups seen removed, oldest first, at most size
	scans    uint64
	scanErrs uint64
	learned  uint64
	gone     uint64
	expired  uint64

	watch *watcher // nil until Watch
}

// New returns a Resolver for the hierarchy at cfg.CgroupRoot.
func New(cfg Config) (*Resolver, error) {
	root := cfg.CgroupRoot
	if root == "" {
		var err error
		if root, err = FindCgroupRoot(); err != nil {
			return nil, err
		}
	} else if root = filepath.Clean(root); !IsCgroup2(root) {
		return nil, fmt.Errorf("cgroup root %s is not a cgroup v2 mount", root)
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = 16384
	}
	grace := cfg.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &Resolver{root: root, sources: cfg.Sources, cache: lru.New[uint64, cached](size), scan: scanPods,
		now: time.Now, size: size, grace: grace}, nil
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
	if hit && !c.partial && !c.gone {
		return c.pod // the common case: no clock read (slow in VMs) per event
	}
	now := r.now()
	if r.expire(now) > 0 {
		c, hit = r.cache.Get(id)
	}
	if hit && !c.partial {
		return c.pod
	}
	if hit && (c.gone || now.Sub(c.at) < retryPartial) {
		return c.pod // gone: so is the runtime's state, nothing more to read
	}
	path, ok := c.path, hit
	if !ok {
		path, ok = r.paths[id]
	}
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
	r.cache.Put(id, cached{pod: pod, partial: partial, at: now, path: path})
	return pod
}

// learn resolves kubepods cgroup id at path, which exists now: the watch
// calls it as the cgroup appears, so that its names are read while the
// runtime's state is there. The names are read without the lock held.
func (r *Resolver) learn(id uint64, path string) {
	r.mu.Lock()
	c, ok := r.cache.Peek(id)
	r.mu.Unlock()
	if ok && !c.partial && !c.gone {
		return
	}
	pod, partial := r.resolve(path)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cache.Put(id, cached{pod: pod, partial: partial, at: r.now(), path: path})
	r.learned++
}

// markGone notes that cgroup id was removed: it is forgotten grace later.
// Only cgroups the cache holds are noted, so the queue of removals is no
// longer than the cache (and it is cut to its size besides).
func (r *Resolver) markGone(id uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cache.Peek(id)
	if !ok || c.gone {
		return
	}
	c.gone = true
	r.cache.Put(id, c) // the most recently used: kept through the grace
	now := r.now()
	r.removed = append(r.removed, removal{id: id, at: now})
	r.gone++
	r.expire(now)
}

// expire forgets the cgroups removed more than grace ago, and the oldest
// removals past the cache's size; it returns how many it forgot.
func (r *Resolver) expire(now time.Time) int {
	n := 0
	for n < len(r.removed) && (now.Sub(r.removed[n].at) >= r.grace || len(r.removed)-n > r.size) {
		if c, ok := r.cache.Peek(r.removed[n].id); ok && c.gone {
			r.cache.Delete(r.removed[n].id)
			r.expired++
		}
		n++
	}
	if n > 0 {
		r.removed = append(r.removed[:0], r.removed[n:]...)
	}
	return n
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
	Scans      uint64 // walks of the hierarchy on a lookup
	ScanErrors uint64 // walks that failed
	Learned    uint64 // kubepods cgroups resolved by the watch as they appeared
	Gone       uint64 // cached cgroups the watch saw removed
	Expired    uint64 // removed cgroups forgotten after the grace
	Watches    int    // directories the watch follows
}

// Stats returns the resolver's counts.
func (r *Resolver) Stats() ResolverStats {
	watches := 0
	if w := r.watcher(); w != nil {
		watches = w.count()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return ResolverStats{Cached: r.cache.Len(), Scans: r.scans, ScanErrors: r.scanErrs,
		Learned: r.learned, Gone: r.gone, Expired: r.expired, Watches: watches}
}

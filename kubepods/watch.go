package kubepods

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// resyncEvery is how often the watch walks the whole hierarchy: to find a
// kubepods tree that appears below a directory it does not follow (kind's
// kubelet.slice, say), to note removals whose events were lost, and to
// forget removed cgroups past their grace when no lookup does.
const resyncEvery = 30 * time.Second

// watchMask: a directory created or removed inside a followed directory.
// IN_IGNORED (the directory itself removed) comes unasked.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW

// watched is a directory the watch follows.
type watched struct {
	wd int32
	id uint64 // the cgroup id: the directory's inode number
}

// watcher follows the kubepods trees of the cgroup hierarchy with inotify
// (the hierarchy's root, each kubepods directory and each directory above
// one), so that a pod's cgroup is resolved as it is created.
type watcher struct {
	r    *Resolver
	root string
	max  int // directories followed at most

	f    *os.File // the inotify instance, non-blocking: Close ends a Read
	fd   int
	stop chan struct{}
	done sync.WaitGroup

	mu   sync.Mutex
	dirs map[string]watched // by path relative to root ("" is root)
	wds  map[int32]string   // path by watch descriptor
	full uint64             // directories not followed: at max
}

// Watch starts following the cgroup hierarchy: every kubepods cgroup there
// now and every one created later is resolved at once (the runtime's state
// is read while the container runs), and a removed one is forgotten only
// Grace after its removal, so that the late events of a short-lived
// container still name its pod. It returns once the hierarchy has been
// read; the watch runs until Close. Without it (an error: no inotify
// instance left, say), pods are resolved on their first event, as before.
func (r *Resolver) Watch() error {
	if r.watcher() != nil {
		return errors.New("kubepods: already watching")
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	w := &watcher{r: r, root: r.root, max: r.size, f: os.NewFile(uintptr(fd), "inotify"), fd: fd,
		stop: make(chan struct{}), dirs: make(map[string]watched), wds: make(map[int32]string)}
	w.mu.Lock()
	err = w.sync()
	w.mu.Unlock()
	if err != nil {
		_ = w.f.Close()
		return err
	}
	r.mu.Lock()
	r.watch = w
	r.mu.Unlock()
	w.done.Add(2)
	go w.read()
	go w.tick()
	return nil
}

// Close stops the watch, if one runs. A nil Resolver is closed.
func (r *Resolver) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	w := r.watch
	r.watch = nil // a second Close does nothing
	r.mu.Unlock()
	if w == nil {
		return nil
	}
	close(w.stop)
	err := w.f.Close()
	w.done.Wait()
	return err
}

func (r *Resolver) watcher() *watcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.watch
}

func (w *watcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.dirs)
}

// inKubepods reports whether a cgroup path lies in a kubepods tree (the
// scan's test).
func inKubepods(rel string) bool { return strings.Contains(rel, "kubepods") }

// read handles the inotify events until the instance is closed.
func (w *watcher) read() {
	defer w.done.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return // closed
		}
		w.mu.Lock()
		w.handle(buf[:n])
		w.mu.Unlock()
	}
}

// tick walks the hierarchy every resyncEvery and forgets what is past its
// grace.
func (w *watcher) tick() {
	defer w.done.Done()
	t := time.NewTicker(resyncEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
			w.mu.Lock()
			_ = w.sync() // a failed walk: the next one
			w.mu.Unlock()
			w.r.mu.Lock()
			w.r.expire(w.r.now())
			w.r.mu.Unlock()
		}
	}
}

// handle reads a buffer of inotify events, as the kernel wrote them.
func (w *watcher) handle(b []byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return
		}
		name := strings.TrimRight(string(b[unix.SizeofInotifyEvent:end]), "\x00")
		b = b[end:]
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			_ = w.sync() // events were lost: read the hierarchy again
		case ev.Mask&unix.IN_IGNORED != 0: // the directory itself is gone
			if rel, ok := w.wds[ev.Wd]; ok {
				w.forget(rel, ev.Wd)
			}
		case ev.Mask&unix.IN_ISDIR == 0 || name == "" || strings.Contains(name, "/"):
		case ev.Mask&unix.IN_CREATE != 0:
			if parent, ok := w.wds[ev.Wd]; ok && inKubepods(parent+"/"+name) {
				w.add(parent + "/" + name)
			}
		case ev.Mask&unix.IN_DELETE != 0:
			if parent, ok := w.wds[ev.Wd]; ok {
				if d, ok := w.dirs[parent+"/"+name]; ok {
					w.forget(parent+"/"+name, d.wd)
				}
			}
		}
	}
}

// add follows directory rel, resolves it if it is in a kubepods tree, and
// then does the same for its kubepods subdirectories: those created before
// the watch began are found by the listing, the others by the watch.
func (w *watcher) add(rel string) {
	if _, ok := w.dirs[rel]; ok {
		return
	}
	if len(w.dirs) >= w.max {
		w.full++
		return
	}
	path := w.root + rel
	wd, err := unix.InotifyAddWatch(w.fd, path, watchMask)
	if err != nil {
		return // removed meanwhile, or the system's watch limit
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
		return
	}
	w.dirs[rel] = watched{wd: int32(wd), id: st.Ino}
	w.wds[int32(wd)] = rel
	if inKubepods(rel) {
		w.r.learn(st.Ino, rel)
	}
	entries, _ := os.ReadDir(path)
	for _, e := range entries {
		if child := rel + "/" + e.Name(); e.IsDir() && inKubepods(child) {
			w.add(child)
		}
	}
}

// forget stops following rel (wd) and notes its cgroup's removal.
func (w *watcher) forget(rel string, wd int32) {
	d, ok := w.dirs[rel]
	if !ok || d.wd != wd {
		return
	}
	delete(w.dirs, rel)
	delete(w.wds, wd)
	_, _ = unix.InotifyRmWatch(w.fd, uint32(wd)) // fails when the kernel dropped it: fine
	w.r.markGone(d.id)
}

// sync walks the hierarchy: it follows every kubepods directory not yet
// followed (and the directories above it) and forgets the followed ones
// that are gone or were replaced.
func (w *watcher) sync() error {
	found, err := scanPods(w.root)
	if err != nil {
		return err
	}
	keep := map[string]uint64{"": 0}
	for id, rel := range found {
		keep[rel] = id
		for p := rel; ; {
			i := strings.LastIndexByte(p, '/')
			if i <= 0 {
				break
			}
			p = p[:i]
			if _, ok := keep[p]; !ok {
				keep[p] = 0 // above a kubepods tree: followed, not resolved
			}
		}
	}
	for rel, d := range w.dirs {
		id, ok := keep[rel]
		if ok && (id == 0 || id == d.id) {
			continue
		}
		if !ok && !inKubepods(rel) {
			if _, err := os.Lstat(w.root + rel); err == nil {
				continue // above a tree that is gone: harmless to follow
			}
		}
		w.forget(rel, d.wd)
	}
	rels := make([]string, 0, len(keep))
	for rel := range keep {
		rels = append(rels, rel)
	}
	sort.Strings(rels) // parents first
	for _, rel := range rels {
		w.add(rel)
	}
	return nil
}

// HasPods reports whether the hierarchy holds a kubepods tree: what the
// watch follows, or, without a watch, what a walk finds.
func (r *Resolver) HasPods() bool {
	if w := r.watcher(); w != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		for rel := range w.dirs {
			if inKubepods(rel) {
				return true
			}
		}
		return false
	}
	found, err := scanPods(r.root)
	return err == nil && len(found) > 0
}

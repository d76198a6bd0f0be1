package kubepods

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// cgroupMounts are where a host mounts the cgroup v2 hierarchy: the whole
// of /sys/fs/cgroup (unified), or beside the v1 controllers (hybrid).
var cgroupMounts = []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}

// FindCgroupRoot returns the mount point of the cgroup v2 hierarchy, the
// one whose ids the kernel records (bpf_get_current_cgroup_id).
func FindCgroupRoot() (string, error) {
	for _, p := range cgroupMounts {
		if IsCgroup2(p) {
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
}

// IsCgroup2 reports whether path is the root of a cgroup v2 mount (or a
// bind mount of one).
func IsCgroup2(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// scanPods walks the hierarchy under root and returns the path, relative
// to root, of every cgroup that lies in a kubepods tree, by cgroup id (on
// cgroup v2 a cgroup's id is its directory's inode number). Cgroups that
// vanish during the walk are skipped.
func scanPods(root string) (map[uint64]string, error) {
	paths := make(map[uint64]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // removed meanwhile, or unreadable: nothing to name there
		}
		if !d.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(p, root)
		if !strings.Contains(rel, "kubepods") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			paths[st.Ino] = rel
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scan cgroups under %s: %w", root, err)
	}
	return paths, nil
}

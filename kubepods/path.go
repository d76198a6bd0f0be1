// Package kubepods names the Kubernetes pod and container that owned a
// socket. The kernel records the owner's cgroup id; this package finds that
// cgroup's path under the cgroup v2 hierarchy, reads the pod UID and
// container id out of the path (kubelet's systemd and cgroupfs layouts;
// containerd, CRI-O and Docker naming), and takes the names from what the
// node itself keeps: the container runtime's state (the OCI bundle's
// annotations, Docker's labels) or, failing that, the kubelet's pod
// directory. It needs no access to the API server.
package kubepods

import (
	"strings"
)

// Runtime is the container runtime a cgroup path names.
type Runtime string

// The runtimes whose cgroup naming is recognised. RuntimeUnknown is a bare
// container id (kubelet's cgroupfs driver with containerd or Docker).
const (
	RuntimeUnknown    Runtime = ""
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "cri-o"
	RuntimeDocker     Runtime = "docker"
)

// PathInfo is what a cgroup path says about a pod.
type PathInfo struct {
	PodUID      string  // with dashes, as in metadata.uid
	ContainerID string  // 64 hex digits; empty for the pod's own cgroup
	Runtime     Runtime // from the container cgroup's prefix, when it has one
}

// ParseCgroupPath reads a cgroup v2 path (relative to the hierarchy's root,
// with or without a leading slash) and reports whether it is inside a
// Kubernetes pod. Recognised layouts, with any prefix before the kubepods
// part (kind and nested nodes put one there):
//
//	systemd:  kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope
//	          (guaranteed pods: kubepods.slice/kubepods-pod<uid_>.slice/...; crio-<id>.scope, docker-<id>.scope)
//	cgroupfs: kubepods/burstable/pod<uid>/<id>, kubepods/pod<uid>/<id>, kubepods/besteffort/pod<uid>/crio-<id>
//
// CRI-O's monitor (crio-conmon-<id>) counts as part of container <id>.
// Cgroups below the container's (a container that makes its own) belong to it.
func ParseCgroupPath(path string) (PathInfo, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	inKubepods := false
	for i, part := range parts {
		if !inKubepods {
			inKubepods = strings.Contains(part, "kubepods")
			if !inKubepods {
				continue
			}
		}
		uid, ok := podUID(part)
		if !ok {
			continue
		}
		info := PathInfo{PodUID: uid}
		if i+1 < len(parts) {
			id, rt, ok := containerID(parts[i+1])
			if !ok {
				return PathInfo{}, false
			}
			info.ContainerID, info.Runtime = id, rt
		}
		return info, true
	}
	return PathInfo{}, false
}

// podUID reads "pod<uid>" (cgroupfs) or "...-pod<uid_with_underscores>.slice" (systemd).
func podUID(part string) (string, bool) {
	var raw string
	if s, ok := strings.CutSuffix(part, ".slice"); ok {
		i := strings.LastIndex(s, "-pod")
		if i < 0 {
			return "", false
		}
		raw = strings.ReplaceAll(s[i+len("-pod"):], "_", "-")
	} else if s, ok := strings.CutPrefix(part, "pod"); ok {
		raw = s
	} else {
		return "", false
	}
	if !isUID(raw) {
		return "", false
	}
	return raw, true
}

// isUID reports whether s is a UUID in its 8-4-4-4-12 text form.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// containerPrefixes are the runtimes' names for a container's cgroup, longest first.
var containerPrefixes = []struct {
	prefix  string
	runtime Runtime
}{
	{"cri-containerd-", RuntimeContainerd},
	{"crio-conmon-", RuntimeCRIO},
	{"crio-", RuntimeCRIO},
	{"docker-", RuntimeDocker},
}

// containerID reads a container cgroup's name: an optional runtime prefix,
// 64 hex digits and, with the systemd driver, ".scope".
func containerID(part string) (string, Runtime, bool) {
	s := strings.TrimSuffix(part, ".scope")
	rt := RuntimeUnknown
	for _, p := range containerPrefixes {
		if rest, ok := strings.CutPrefix(s, p.prefix); ok {
			s, rt = rest, p.runtime
			break
		}
	}
	if len(s) != 64 {
		return "", "", false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return "", "", false
		}
	}
	return strings.ToLower(s), rt, true
}

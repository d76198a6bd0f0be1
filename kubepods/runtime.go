package kubepods

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// Meta is what the node knows of a container: the names to report.
type Meta struct {
	Namespace string
	Pod       string
	PodUID    string
	Container string // empty for the pod sandbox (pause) and when unknown
}

// Sources are the node's directories the names are read from. An empty
// path turns that source off.
type Sources struct {
	Containerd string // containerd's state directory (its --state), e.g. /run/containerd
	CRIO       string // CRI-O's run root, e.g. /run/containers/storage
	Docker     string // Docker's data root, e.g. /var/lib/docker
	Kubelet    string // the kubelet's root directory, e.g. /var/lib/kubelet
}

// DefaultSources are the runtimes' and the kubelet's default directories.
var DefaultSources = Sources{
	Containerd: "/run/containerd",
	CRIO:       "/run/containers/storage",
	Docker:     "/var/lib/docker",
	Kubelet:    "/var/lib/kubelet",
}

// The annotations and labels the runtimes put on a Kubernetes container.
const (
	// containerd's CRI plugin, on the OCI bundle (config.json).
	cdContainerType = "io.kubernetes.cri.container-type"
	cdContainerName = "io.kubernetes.cri.container-name"
	cdPodName       = "io.kubernetes.cri.sandbox-name"
	cdPodNamespace  = "io.kubernetes.cri.sandbox-namespace"
	cdPodUID        = "io.kubernetes.cri.sandbox-uid"
	// CRI-O on the OCI bundle, and cri-dockerd as Docker labels.
	k8sContainerName = "io.kubernetes.container.name"
	k8sPodName       = "io.kubernetes.pod.name"
	k8sPodNamespace  = "io.kubernetes.pod.namespace"
	k8sPodUID        = "io.kubernetes.pod.uid"
	crioType         = "io.kubernetes.cri-o.ContainerType"
)

// containerdNamespace is containerd's namespace for Kubernetes' containers.
const containerdNamespace = "k8s.io"

// Container returns the names of container id, trying the runtime the
// cgroup named first and then the others.
func (s Sources) Container(id string, rt Runtime) (Meta, bool) {
	order := []Runtime{RuntimeContainerd, RuntimeCRIO, RuntimeDocker}
	if rt != RuntimeUnknown {
		order = []Runtime{rt}
	}
	for _, r := range order {
		var m Meta
		var ok bool
		switch r {
		case RuntimeContainerd:
			m, ok = s.containerd(id)
		case RuntimeCRIO:
			m, ok = s.crio(id)
		case RuntimeDocker:
			m, ok = s.docker(id)
		}
		if ok {
			return m, true
		}
	}
	return Meta{}, false
}

// containerd keeps each task's OCI bundle in its state directory.
func (s Sources) containerd(id string) (Meta, bool) {
	if s.Containerd == "" {
		return Meta{}, false
	}
	a, ok := bundleAnnotations(filepath.Join(s.Containerd, "io.containerd.runtime.v2.task", containerdNamespace, id, "config.json"))
	if !ok || a[cdPodName] == "" {
		return Meta{}, false
	}
	m := Meta{Namespace: a[cdPodNamespace], Pod: a[cdPodName], PodUID: a[cdPodUID]}
	if a[cdContainerType] != "sandbox" {
		m.Container = a[cdContainerName]
	}
	return m, true
}

// crio keeps each container's OCI bundle under its run root.
func (s Sources) crio(id string) (Meta, bool) {
	if s.CRIO == "" {
		return Meta{}, false
	}
	a, ok := bundleAnnotations(filepath.Join(s.CRIO, "overlay-containers", id, "userdata", "config.json"))
	if !ok {
		return Meta{}, false
	}
	return labelMeta(a, a[crioType] == "sandbox")
}

// docker keeps each container's configuration, labels included, in its data root.
func (s Sources) docker(id string) (Meta, bool) {
	if s.Docker == "" {
		return Meta{}, false
	}
	b, err := os.ReadFile(filepath.Join(s.Docker, "containers", id, "config.v2.json"))
	if err != nil {
		return Meta{}, false
	}
	var cfg struct {
		Config struct {
			Labels map[string]string
		}
	}
	if json.Unmarshal(b, &cfg) != nil {
		return Meta{}, false
	}
	l := cfg.Config.Labels
	return labelMeta(l, l[k8sContainerName] == "POD") // cri-dockerd's name for the sandbox
}

// labelMeta reads the io.kubernetes.* labels CRI-O and cri-dockerd set.
func labelMeta(l map[string]string, sandbox bool) (Meta, bool) {
	if l[k8sPodName] == "" {
		return Meta{}, false
	}
	m := Meta{Namespace: l[k8sPodNamespace], Pod: l[k8sPodName], PodUID: l[k8sPodUID]}
	if !sandbox {
		m.Container = l[k8sContainerName]
	}
	return m, true
}

// bundleAnnotations reads the annotations of an OCI runtime bundle's config.json.
func bundleAnnotations(path string) (map[string]string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(b, &spec) != nil {
		return nil, false
	}
	return spec.Annotations, true
}

// Pod returns what the kubelet's directory of pod uid says: the namespace
// (from the service account volume, when the pod mounts one) and the pod's
// hostname from the hosts file the kubelet writes, which is the pod's name
// unless its spec sets another hostname. It names no container.
func (s Sources) Pod(uid string) (Meta, bool) {
	if s.Kubelet == "" {
		return Meta{}, false
	}
	dir := filepath.Join(s.Kubelet, "pods", uid)
	m := Meta{PodUID: uid, Pod: kubeletHostname(filepath.Join(dir, "etc-hosts"))}
	matches, _ := filepath.Glob(filepath.Join(dir, "volumes", "kubernetes.io~projected", "*", "namespace"))
	for _, p := range matches {
		if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
			m.Namespace = string(bytes.TrimSpace(b))
			break
		}
	}
	if m.Pod == "" && m.Namespace == "" {
		return Meta{}, false
	}
	return m, true
}

// kubeletHostname reads a kubelet-managed hosts file: after the fixed
// loopback entries come the pod's addresses with its hostname (the last
// name on the line, after any FQDN), then the entries of spec.hostAliases.
func kubeletHostname(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	// A host-network pod gets "(host network)" and a copy of the node's file.
	if !sc.Scan() || sc.Text() != "# Kubernetes-managed hosts file." {
		return ""
	}
	name := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "# Entries added by HostAliases") {
			break
		}
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] == "127.0.0.1" || f[0] == "::1" || strings.HasPrefix(f[0], "fe00::") {
			continue // the fixed loopback and multicast entries
		}
		name = f[len(f)-1]
	}
	return name
}

// SourceProblem is a name source that cannot give names.
type SourceProblem struct {
	Source string // containerd, cri-o, docker or kubelet
	Path   string
	Reason string
}

// sourceMarkers are what each source's directory holds when it is the
// right one: the subdirectory the names are read from.
var sourceMarkers = []struct {
	name   string
	path   func(Sources) string
	marker string
}{
	{"containerd", func(s Sources) string { return s.Containerd }, "io.containerd.runtime.v2.task"},
	{"cri-o", func(s Sources) string { return s.CRIO }, "overlay-containers"},
	{"docker", func(s Sources) string { return s.Docker }, "containers"},
	{"kubelet", func(s Sources) string { return s.Kubelet }, "pods"},
}

// Check returns the sources that cannot give names. A source set to
// another path than its default must exist and hold what that source
// keeps (containerd's state directory, not its root, say). A source left at
// its default is expected to be missing on nodes of another runtime: it
// counts only when pods is true (the node has kubepods cgroups) and no
// container runtime's source at all is there.
func (s Sources) Check(defaults Sources, pods bool) []SourceProblem {
	var problems, missingDefaults []SourceProblem
	runtimeOK := false
	for _, m := range sourceMarkers {
		path := m.path(s)
		if path == "" {
			continue // turned off
		}
		reason := ""
		if fi, err := os.Stat(path); err != nil {
			reason = "no such directory"
		} else if !fi.IsDir() {
			reason = "not a directory"
		} else if fi, err := os.Stat(filepath.Join(path, m.marker)); err != nil || !fi.IsDir() {
			reason = "no " + m.marker + " in it"
		}
		if reason == "" {
			if m.name != "kubelet" {
				runtimeOK = true
			}
			continue
		}
		p := SourceProblem{Source: m.name, Path: path, Reason: reason}
		if path != m.path(defaults) {
			problems = append(problems, p)
		} else if m.name != "kubelet" {
			missingDefaults = append(missingDefaults, p)
		}
	}
	if pods && !runtimeOK {
		problems = append(problems, missingDefaults...)
	}
	return problems
}

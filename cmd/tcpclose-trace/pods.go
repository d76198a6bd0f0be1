package main

import (
	"flag"
	"fmt"
	"strings"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/kubepods"
)

// podFlags are the pod attribution flags both modes share.
type podFlags struct {
	mode string
	cfg  kubepods.Config
}

func (f *podFlags) define(fs *flag.FlagSet) {
	d := kubepods.DefaultSources
	fs.StringVar(&f.mode, "pods", "auto", "Kubernetes pod attribution: auto (name the pod and container of owners that run in one) or off")
	fs.StringVar(&f.cfg.CgroupRoot, "cgroup-root", "", "cgroup v2 mount whose ids the kernel records (default: /sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts)")
	fs.StringVar(&f.cfg.Sources.Containerd, "containerd-root", d.Containerd, "containerd state directory, for pod and container names (empty: off)")
	fs.StringVar(&f.cfg.Sources.CRIO, "crio-root", d.CRIO, "CRI-O run root, for pod and container names (empty: off)")
	fs.StringVar(&f.cfg.Sources.Docker, "docker-root", d.Docker, "Docker data root (cri-dockerd), for pod and container names (empty: off)")
	fs.StringVar(&f.cfg.Sources.Kubelet, "kubelet-root", d.Kubelet, "kubelet root directory, for pod names the runtime does not give (empty: off)")
}

func (f *podFlags) validate() error {
	if f.mode != "auto" && f.mode != "off" {
		return fmt.Errorf("--pods must be auto or off, not %q", f.mode)
	}
	return nil
}

// resolver returns the pod resolver, or nil when attribution is off. In
// auto mode a host without a cgroup v2 hierarchy has no pods to name, and
// gets nil; a --cgroup-root that is not cgroup v2 is an error. The resolver
// watches the hierarchy (so that short-lived containers are named) until
// its Close. warnings are for the user, once, at start: a name source that
// is missing, a watch that could not start.
func (f *podFlags) resolver() (r *kubepods.Resolver, warnings []string, err error) {
	if f.mode == "off" {
		return nil, nil, nil
	}
	if f.cfg.CgroupRoot == "" {
		if _, err := kubepods.FindCgroupRoot(); err != nil {
			return nil, nil, nil
		}
	}
	r, err = kubepods.New(f.cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("--cgroup-root: %w", err)
	}
	if err := r.Watch(); err != nil {
		warnings = append(warnings, fmt.Sprintf("pods: cannot watch %s (%v): a container that exits within about 100 ms of its close may be reported without its pod", r.Root(), err))
	}
	if w := sourceWarning(f.cfg.Sources.Check(kubepods.DefaultSources, r.HasPods())); w != "" {
		warnings = append(warnings, w)
	}
	return r, warnings, nil
}

// sourceFlags names each name source's flag.
var sourceFlags = map[string]string{"containerd": "--containerd-root", "cri-o": "--crio-root",
	"docker": "--docker-root", "kubelet": "--kubelet-root"}

// sourceWarning says in one line which name sources give no names, or ""
// when all do.
func sourceWarning(problems []kubepods.SourceProblem) string {
	if len(problems) == 0 {
		return ""
	}
	parts := make([]string, len(problems))
	for i, p := range problems {
		parts[i] = fmt.Sprintf("%s %s: %s", sourceFlags[p.Source], p.Path, p.Reason)
	}
	return "pods: no names from " + strings.Join(parts, "; ") +
		" (events in pods get the pod uid and container id only)"
}

// enricher returns a function that sets an event's pod, or one that does
// nothing when r is nil.
func enricher(r *kubepods.Resolver) func(*collector.Event) {
	if r == nil {
		return func(*collector.Event) {}
	}
	return r.Enrich
}

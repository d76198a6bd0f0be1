package kubetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// allowedHostPaths are the only host directories the daemon may mount: the
// kernel's BTF, the cgroup tree, and the runtimes' and kubelet's
// directories that name pods (at their default places, and k3s's).
var allowedHostPaths = []string{
	"/sys/kernel/btf",
	"/sys/fs/cgroup",
	"/sys/fs/cgroup/unified",
	"/run/containerd/io.containerd.runtime.v2.task",
	"/run/k3s/containerd/io.containerd.runtime.v2.task",
	"/run/containers/storage/overlay-containers",
	"/var/lib/docker/containers",
	"/var/lib/kubelet/pods",
}

// forbiddenHostPaths must not be reachable through any host mount: the
// runtimes' API sockets (root on the node to whoever connects, read-only
// mount or not) and the node's credentials.
var forbiddenHostPaths = []string{
	"/run/containerd/containerd.sock",
	"/run/k3s/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/var/run/crio/crio.sock",
	"/run/docker.sock",
	"/var/run/docker.sock",
	"/run/cri-dockerd.sock",
	"/var/lib/kubelet/pki",
	"/var/lib/kubelet/kubeconfig",
	"/etc/kubernetes",
	"/proc",
	"/dev",
}

// webConfigDir is where the chart mounts the web config Secret.
const webConfigDir = "/etc/tcpclose-trace/web"

func resources(reqCPU, reqMem, limCPU, limMem string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(reqCPU), corev1.ResourceMemory: resource.MustParse(reqMem)},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(limCPU), corev1.ResourceMemory: resource.MustParse(limMem)},
	}
}

// dump renders v as YAML for a failure message.
func dump(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// checkObjects checks one rendering's objects against w.
func checkObjects(t *testing.T, objs objects, w want) {
	t.Helper()
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.kind)
		checkMeta(t, o, w.namespace)
	}
	slices.Sort(kinds)
	if wk := slices.Sorted(slices.Values(w.kinds)); !slices.Equal(kinds, wk) {
		t.Fatalf("kinds = %v, want %v", kinds, wk)
	}
	ds := one[appsv1.DaemonSet](t, objs, kDaemonSet)
	checkDaemonSet(t, ds, w)
	checkServiceAccount(t, objs, ds)
	checkScraping(t, objs, ds, w)
	for _, o := range objs.ofKind(kPrometheusRule) {
		checkPrometheusRule(t, o)
	}
	for _, o := range objs.ofKind(kNetworkPolicy) {
		checkNetworkPolicy(t, o.typ.(*networkingv1.NetworkPolicy), ds, w)
	}
	for _, ns := range objs.ofKind(kNamespace) {
		if ns.meta.Name != w.namespace {
			t.Errorf("Namespace %s, want %s", ns.meta.Name, w.namespace)
		}
		// hostPath volumes and added capabilities need the privileged level.
		if got := ns.meta.Labels["pod-security.kubernetes.io/enforce"]; got != "privileged" {
			t.Errorf("Namespace %s: pod-security.kubernetes.io/enforce = %q, want privileged", ns.meta.Name, got)
		}
	}
}

// checkMeta checks an object's name, namespace and labels are valid.
func checkMeta(t *testing.T, o object, namespace string) {
	t.Helper()
	where := o.kind + " " + o.meta.Name
	for _, e := range validation.IsDNS1123Label(o.meta.Name) {
		t.Errorf("%s: name: %s", where, e)
	}
	if o.kind == kNamespace {
		if o.meta.Namespace != "" {
			t.Errorf("%s: a Namespace has no namespace", where)
		}
	} else if o.meta.Namespace != namespace {
		t.Errorf("%s: namespace %q, want %q", where, o.meta.Namespace, namespace)
	}
	checkLabels(t, where, o.meta.Labels)
	if o.meta.Labels["app.kubernetes.io/name"] != "tcpclose-trace" {
		t.Errorf("%s: label app.kubernetes.io/name = %q, want tcpclose-trace", where, o.meta.Labels["app.kubernetes.io/name"])
	}
}

func checkLabels(t *testing.T, where string, labels map[string]string) {
	t.Helper()
	for k, v := range labels {
		for _, e := range validation.IsQualifiedName(k) {
			t.Errorf("%s: label key %q: %s", where, k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			t.Errorf("%s: label %s value %q: %s", where, k, v, e)
		}
	}
}

// isSubset reports whether every entry of sel is in labels, and sel is not
// empty.
func isSubset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet, w want) {
	t.Helper()
	pod := ds.Spec.Template
	if ds.Spec.Selector == nil || len(ds.Spec.Selector.MatchExpressions) > 0 || !isSubset(ds.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("DaemonSet selector %v does not select its pod labels %v", ds.Spec.Selector, pod.Labels)
	}
	checkLabels(t, "pod template", pod.Labels)
	spec := pod.Spec

	// The pod: no host namespaces, no API token, nothing privileged at the
	// pod level, one container.
	// The host's pid namespace only for --stacks: the stacks of other
	// processes are read from their /proc entries.
	if spec.HostNetwork || spec.HostPID != w.hostPID || spec.HostIPC {
		t.Errorf("host namespaces: network %v, pid %v, ipc %v; want pid %v only", spec.HostNetwork, spec.HostPID, spec.HostIPC, w.hostPID)
	}
	if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
		t.Error("shareProcessNamespace is set")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken is not false: the daemon needs no API token")
	}
	if spec.SecurityContext != nil && !reflectZero(*spec.SecurityContext) {
		t.Errorf("pod securityContext is set (%s); the container's holds everything", dump(spec.SecurityContext))
	}
	if len(spec.InitContainers) > 0 || len(spec.EphemeralContainers) > 0 || len(spec.Containers) != 1 {
		t.Fatalf("want exactly one container and no init or ephemeral ones; got %d, %d, %d",
			len(spec.Containers), len(spec.InitContainers), len(spec.EphemeralContainers))
	}
	c := spec.Containers[0]
	if c.Name != "tcpclose-trace" {
		t.Errorf("container %q, want tcpclose-trace", c.Name)
	}
	if c.Image != w.image {
		t.Errorf("image %q, want %q", c.Image, w.image)
	}
	if len(c.Command) > 0 {
		t.Errorf("command %q overrides the image's entrypoint", c.Command)
	}
	if !slices.Equal(c.Args, w.args) {
		t.Errorf("args:\n got %q\nwant %q", c.Args, w.args)
	}
	if want := fmt.Sprintf("--web.listen-address=:%d", w.port); !slices.Contains(c.Args, want) {
		t.Errorf("args %q do not listen on the metrics port (%s)", c.Args, want)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("env %s: valueFrom", e.Name)
		}
		env[e.Name] = e.Value
	}
	if len(c.EnvFrom) > 0 || !maps.Equal(env, w.env) {
		t.Errorf("env = %v (envFrom %v), want %v", env, c.EnvFrom, w.env)
	}
	checkSecurityContext(t, c.SecurityContext, w)
	checkVolumes(t, spec.Volumes, c, w)
	checkPortsAndProbes(t, c, w)
	checkResources(t, c.Resources, w.resources)

	// Every node: a toleration of every taint.
	tolerant := false
	for _, tol := range spec.Tolerations {
		if tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == "" && tol.TolerationSeconds == nil {
			tolerant = true
		}
	}
	if !tolerant {
		t.Errorf("tolerations %v: want one with operator Exists and no key or effect (every taint)", spec.Tolerations)
	}
	if s := ds.Spec.UpdateStrategy; s.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("updateStrategy %s, want RollingUpdate", s.Type)
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g < 1 || *g > 30 {
		t.Errorf("terminationGracePeriodSeconds %v: want 1-30 (the daemon stops within 50 ms)", g)
	}
}

func reflectZero(sc corev1.PodSecurityContext) bool {
	b, _ := json.Marshal(sc)
	return string(b) == "{}"
}

// checkSecurityContext: uid 0 with exactly the wanted capabilities and no
// way to gain others, read-only root, the seccomp profile asked for.
func checkSecurityContext(t *testing.T, sc *corev1.SecurityContext, w want) {
	t.Helper()
	if sc == nil {
		t.Fatal("container has no securityContext")
	}
	isFalse := func(name string, p *bool) {
		if p == nil || *p {
			t.Errorf("securityContext.%s = %v, want false (set explicitly)", name, ptrStr(p))
		}
	}
	isFalse("privileged", sc.Privileged)
	isFalse("allowPrivilegeEscalation", sc.AllowPrivilegeEscalation)
	isFalse("runAsNonRoot", sc.RunAsNonRoot)
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("securityContext.readOnlyRootFilesystem = %v, want true", ptrStr(sc.ReadOnlyRootFilesystem))
	}
	// uid 0 (see deploy/kubernetes/README.md, "Privileges"): with only the
	// capabilities below.
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.RunAsGroup == nil || *sc.RunAsGroup != 0 {
		t.Errorf("runAsUser/runAsGroup = %v/%v, want 0/0", ptrStr(sc.RunAsUser), ptrStr(sc.RunAsGroup))
	}
	if sc.Capabilities == nil {
		t.Fatal("securityContext.capabilities is not set")
	}
	if drop := sc.Capabilities.Drop; len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("capabilities.drop = %v, want exactly [ALL]", drop)
	}
	var add []string
	for _, c := range sc.Capabilities.Add {
		add = append(add, string(c))
	}
	slices.Sort(add)
	if want := slices.Sorted(slices.Values(w.caps)); !slices.Equal(add, want) {
		t.Errorf("capabilities.add = %v, want exactly %v", add, want)
	}
	if sc.SeccompProfile == nil || sc.SeccompProfile.Type != w.seccomp {
		t.Errorf("seccompProfile = %s, want type %s", dump(sc.SeccompProfile), w.seccomp)
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount {
		t.Errorf("procMount = %s", *sc.ProcMount)
	}
	if sc.SELinuxOptions != nil || sc.WindowsOptions != nil || sc.AppArmorProfile != nil {
		t.Errorf("unexpected SELinux, Windows or AppArmor options: %s", dump(sc))
	}
}

func ptrStr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// checkVolumes: host directories only from the allow-list, each mounted
// read-only at its own path; otherwise only the web config Secret.
func checkVolumes(t *testing.T, vols []corev1.Volume, c corev1.Container, w want) {
	t.Helper()
	mounts := map[string][]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = append(mounts[m.Name], m)
	}
	if len(c.VolumeDevices) > 0 {
		t.Errorf("volumeDevices: %v", c.VolumeDevices)
	}
	hostPaths := map[string]string{}
	secret := ""
	for _, v := range vols {
		ms := mounts[v.Name]
		delete(mounts, v.Name)
		if len(ms) != 1 {
			t.Errorf("volume %s is mounted %d times, want once", v.Name, len(ms))
			continue
		}
		m := ms[0]
		if !m.ReadOnly {
			t.Errorf("volume %s is mounted read-write", v.Name)
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			t.Errorf("volume %s: subPath", v.Name)
		}
		switch {
		case v.HostPath != nil:
			p := v.HostPath.Path
			hostPaths[v.Name] = p
			if !slices.Contains(allowedHostPaths, p) {
				t.Errorf("hostPath %s is not in the allow-list %v", p, allowedHostPaths)
			}
			for _, f := range forbiddenHostPaths {
				if f == p || strings.HasPrefix(f, p+"/") || strings.HasPrefix(p, f+"/") {
					t.Errorf("hostPath %s exposes %s", p, f)
				}
			}
			if path.Clean(p) != p || !path.IsAbs(p) {
				t.Errorf("hostPath %q is not a clean absolute path", p)
			}
			if v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectory {
				t.Errorf("hostPath %s: type %s, want Directory (no directory is created on the node)", p, ptrStr(v.HostPath.Type))
			}
			// At the same path, so the daemon's defaults find it.
			if m.MountPath != p {
				t.Errorf("hostPath %s is mounted at %s, want the same path", p, m.MountPath)
			}
			if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
				t.Errorf("hostPath %s: mountPropagation %s, want None", p, *m.MountPropagation)
			}
			if got := ptrStr(m.RecursiveReadOnly); (w.rro == "" && m.RecursiveReadOnly != nil) || (w.rro != "" && got != w.rro) {
				t.Errorf("hostPath %s: recursiveReadOnly %s, want %q", p, got, w.rro)
			}
		case v.Secret != nil && v.Name == "web-config":
			secret = v.Secret.SecretName
			if m.MountPath != webConfigDir {
				t.Errorf("web config mounted at %s, want %s", m.MountPath, webConfigDir)
			}
			if mode := v.Secret.DefaultMode; mode == nil || *mode&0o077 != 0 {
				t.Errorf("web config Secret mode %s: want no group or other access", ptrStr(mode))
			}
		default:
			t.Errorf("volume %s: unexpected source %s", v.Name, dump(v.VolumeSource))
		}
	}
	for name := range mounts {
		t.Errorf("volumeMount %s has no volume", name)
	}
	if !maps.Equal(hostPaths, w.hostPaths) {
		t.Errorf("hostPath volumes = %v, want %v", hostPaths, w.hostPaths)
	}
	if secret != w.secret {
		t.Errorf("web config Secret %q, want %q", secret, w.secret)
	}
	if w.secret != "" && !slices.Contains(c.Args, "--web.config.file="+webConfigDir+"/web-config.yml") {
		t.Errorf("web config mounted but args %q do not use it", c.Args)
	}
}

// checkPortsAndProbes: one metrics port (no hostPort); liveness on
// /healthz and readiness on /readyz on that port.
func checkPortsAndProbes(t *testing.T, c corev1.Container, w want) {
	t.Helper()
	if len(c.Ports) != 1 {
		t.Fatalf("ports %v, want only metrics", c.Ports)
	}
	p := c.Ports[0]
	if p.Name != "metrics" || p.ContainerPort != w.port || p.Protocol != corev1.ProtocolTCP || p.HostPort != 0 || p.HostIP != "" {
		t.Errorf("port %+v, want metrics, %d/TCP, no host port", p, w.port)
	}
	for _, pr := range []struct {
		name, path string
		probe      *corev1.Probe
	}{
		{"liveness", "/healthz", c.LivenessProbe},
		{"readiness", "/readyz", c.ReadinessProbe},
	} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET of %s", pr.name, pr.path)
			continue
		}
		g := pr.probe.HTTPGet
		if g.Path != pr.path {
			t.Errorf("%s probe path %s, want %s", pr.name, g.Path, pr.path)
		}
		if g.Port != intstr.FromString("metrics") && g.Port != intstr.FromInt32(w.port) {
			t.Errorf("%s probe port %s, want metrics (%d)", pr.name, g.Port.String(), w.port)
		}
		if g.Scheme != w.scheme {
			t.Errorf("%s probe scheme %q, want %q", pr.name, g.Scheme, w.scheme)
		}
		if g.Host != "" {
			t.Errorf("%s probe host %q: the pod's own address only", pr.name, g.Host)
		}
		if len(g.HTTPHeaders) != w.headers {
			t.Errorf("%s probe headers %v, want %d", pr.name, g.HTTPHeaders, w.headers)
		}
		if pr.probe.PeriodSeconds < 1 || pr.probe.TimeoutSeconds < 1 || pr.probe.FailureThreshold < 1 {
			t.Errorf("%s probe timing unset: %s", pr.name, dump(pr.probe))
		}
	}
	if c.StartupProbe != nil {
		t.Errorf("unexpected startup probe")
	}
}

// checkResources: requests and limits exactly as wanted, requests within
// limits.
func checkResources(t *testing.T, got, want corev1.ResourceRequirements) {
	t.Helper()
	eq := func(a, b corev1.ResourceList) bool {
		if len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || v.Cmp(w) != 0 {
				return false
			}
		}
		return true
	}
	if !eq(got.Requests, want.Requests) || !eq(got.Limits, want.Limits) {
		t.Errorf("resources:\n%swant\n%s", dump(got), dump(want))
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, ok := got.Requests[r]
		if !ok {
			t.Errorf("no %s request", r)
			continue
		}
		if lim, ok := got.Limits[r]; ok && req.Cmp(lim) > 0 {
			t.Errorf("%s request %s above its limit %s", r, req.String(), lim.String())
		}
	}
	if _, ok := got.Limits[corev1.ResourceMemory]; !ok {
		t.Error("no memory limit")
	}
}

func checkServiceAccount(t *testing.T, objs objects, ds *appsv1.DaemonSet) {
	t.Helper()
	sas := objs.ofKind(kServiceAccount)
	name := ds.Spec.Template.Spec.ServiceAccountName
	if len(sas) == 0 {
		if name != "default" {
			t.Errorf("no ServiceAccount rendered, but the pod uses %q", name)
		}
		return
	}
	sa := sas[0].typ.(*corev1.ServiceAccount)
	if len(sas) != 1 || sa.Name != name {
		t.Errorf("pod uses ServiceAccount %q; rendered %d, the first %q", name, len(sas), sa.Name)
	}
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("ServiceAccount: automountServiceAccountToken is not false")
	}
}

// checkScraping: the Service and the monitors reach the DaemonSet's pods
// on their metrics port, and name the node in instance.
func checkScraping(t *testing.T, objs objects, ds *appsv1.DaemonSet, w want) {
	t.Helper()
	podLabels := ds.Spec.Template.Labels
	var svc *corev1.Service
	for _, o := range objs.ofKind(kService) {
		svc = o.typ.(*corev1.Service)
		if !isSubset(svc.Spec.Selector, podLabels) || !isSubset(ds.Spec.Selector.MatchLabels, svc.Spec.Selector) {
			t.Errorf("Service selector %v: want the DaemonSet's selector %v", svc.Spec.Selector, ds.Spec.Selector.MatchLabels)
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service clusterIP %q, want None (headless: each pod scraped on its own)", svc.Spec.ClusterIP)
		}
		if len(svc.Spec.Ports) != 1 {
			t.Fatalf("Service ports %v, want only metrics", svc.Spec.Ports)
		}
		p := svc.Spec.Ports[0]
		if p.Name != "metrics" || p.Port != w.port || p.Protocol != corev1.ProtocolTCP ||
			(p.TargetPort != intstr.FromString("metrics") && p.TargetPort != intstr.FromInt32(w.port)) {
			t.Errorf("Service port %+v, want metrics %d/TCP to the pods' metrics port", p, w.port)
		}
	}
	scheme := strings.ToLower(string(w.scheme))
	for _, o := range objs.ofKind(kServiceMonitor) {
		sm := o.typ.(*monitoringv1.ServiceMonitor)
		if svc == nil {
			t.Fatal("ServiceMonitor without a Service")
		}
		if sm.Namespace != svc.Namespace || sm.Spec.NamespaceSelector.Any || len(sm.Spec.NamespaceSelector.MatchNames) > 0 {
			t.Errorf("ServiceMonitor in %s (selector %+v), Service in %s", sm.Namespace, sm.Spec.NamespaceSelector, svc.Namespace)
		}
		if len(sm.Spec.Selector.MatchExpressions) > 0 || !isSubset(sm.Spec.Selector.MatchLabels, svc.Labels) {
			t.Errorf("ServiceMonitor selector %v does not select the Service's labels %v", sm.Spec.Selector.MatchLabels, svc.Labels)
		}
		if sm.Spec.JobLabel != "" && svc.Labels[sm.Spec.JobLabel] == "" {
			t.Errorf("ServiceMonitor jobLabel %s: not a label of the Service", sm.Spec.JobLabel)
		}
		if len(sm.Spec.Endpoints) != 1 {
			t.Fatalf("ServiceMonitor endpoints: %d, want 1", len(sm.Spec.Endpoints))
		}
		e := sm.Spec.Endpoints[0]
		if e.Port != "metrics" || e.Path != "/metrics" || e.Scheme.String() != scheme {
			t.Errorf("ServiceMonitor endpoint port %q path %q scheme %q, want metrics /metrics %s", e.Port, e.Path, e.Scheme.String(), scheme)
		}
		checkInstanceRelabel(t, "ServiceMonitor", e.RelabelConfigs)
	}
	for _, o := range objs.ofKind(kPodMonitor) {
		pm := o.typ.(*monitoringv1.PodMonitor)
		if pm.Namespace != ds.Namespace || pm.Spec.NamespaceSelector.Any || len(pm.Spec.NamespaceSelector.MatchNames) > 0 {
			t.Errorf("PodMonitor in %s (selector %+v), DaemonSet in %s", pm.Namespace, pm.Spec.NamespaceSelector, ds.Namespace)
		}
		if len(pm.Spec.Selector.MatchExpressions) > 0 || !isSubset(pm.Spec.Selector.MatchLabels, podLabels) {
			t.Errorf("PodMonitor selector %v does not select the pod labels %v", pm.Spec.Selector.MatchLabels, podLabels)
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("PodMonitor endpoints: %d, want 1", len(pm.Spec.PodMetricsEndpoints))
		}
		e := pm.Spec.PodMetricsEndpoints[0]
		if ptrStr(e.Port) != "metrics" || e.Path != "/metrics" || e.Scheme.String() != scheme {
			t.Errorf("PodMonitor endpoint port %s path %q scheme %q, want metrics /metrics %s", ptrStr(e.Port), e.Path, e.Scheme.String(), scheme)
		}
		checkInstanceRelabel(t, "PodMonitor", e.RelabelConfigs)
	}
}

// checkNetworkPolicy: the policy selects the daemon's pods, restricts
// ingress only, and admits some peers (never all) to the metrics port and
// nothing else.
func checkNetworkPolicy(t *testing.T, np *networkingv1.NetworkPolicy, ds *appsv1.DaemonSet, w want) {
	t.Helper()
	sel := np.Spec.PodSelector
	if len(sel.MatchExpressions) > 0 || len(sel.MatchLabels) == 0 || !isSubset(sel.MatchLabels, ds.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy podSelector %v does not select the pod labels %v", sel.MatchLabels, ds.Spec.Template.Labels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("NetworkPolicy policyTypes %v, want [Ingress]", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 1 {
		t.Fatalf("NetworkPolicy: %d ingress rules, want 1", len(np.Spec.Ingress))
	}
	rule := np.Spec.Ingress[0]
	if len(rule.From) == 0 {
		t.Errorf("NetworkPolicy admits every source: from is empty")
	}
	for i, peer := range rule.From {
		if peer.PodSelector == nil && peer.NamespaceSelector == nil && peer.IPBlock == nil {
			t.Errorf("NetworkPolicy from[%d] is empty", i)
		}
	}
	if len(rule.Ports) != 1 {
		t.Fatalf("NetworkPolicy: %d ports, want 1 (metrics)", len(rule.Ports))
	}
	p := rule.Ports[0]
	c := ds.Spec.Template.Spec.Containers[0]
	var named int32
	for _, cp := range c.Ports {
		if p.Port != nil && p.Port.String() == cp.Name {
			named = cp.ContainerPort
		}
	}
	if p.Port == nil || (named != w.port && p.Port.IntVal != w.port) || p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
		t.Errorf("NetworkPolicy port %v/%v, want the metrics port %d/TCP", p.Port, ptrStr(p.Protocol), w.port)
	}
}

// checkInstanceRelabel: the first relabeling sets instance to the node's
// name, which the alerts and the dashboard show.
func checkInstanceRelabel(t *testing.T, what string, rcs []monitoringv1.RelabelConfig) {
	t.Helper()
	if len(rcs) == 0 {
		t.Errorf("%s: no relabeling sets instance to the node name", what)
		return
	}
	r := rcs[0]
	if r.Action != "replace" || r.TargetLabel != "instance" || len(r.SourceLabels) != 1 || r.SourceLabels[0] != "__meta_kubernetes_pod_node_name" {
		t.Errorf("%s: first relabeling %s, want instance from __meta_kubernetes_pod_node_name", what, dump(r))
	}
}

// checkPrometheusRule: the spec is deploy/prometheus/tcpclose-trace.rules.yml,
// key for key.
func checkPrometheusRule(t *testing.T, o object) {
	t.Helper()
	want := rulesFileAsJSON(t)
	if d := diff(o.raw["spec"], want); d != "" {
		t.Errorf("PrometheusRule spec is not %s:%s", rulesFile, d)
	}
}

// rulesFileAsJSON reads the rules file as generic JSON, after checking it
// decodes strictly as a PrometheusRule spec.
func rulesFileAsJSON(t *testing.T) any {
	t.Helper()
	src, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSONStrict(src)
	if err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	if err := unmarshalStrict(js, &spec); err != nil {
		t.Fatalf("%s as a PrometheusRule spec: %v", rulesFile, err)
	}
	if len(spec.Groups) == 0 || len(spec.Groups[0].Rules) == 0 {
		t.Fatalf("%s: no rules", rulesFile)
	}
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

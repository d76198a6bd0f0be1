package kubetest

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Object kinds, as decodeAll names them.
const (
	kNamespace      = "v1/Namespace"
	kServiceAccount = "v1/ServiceAccount"
	kService        = "v1/Service"
	kDaemonSet      = "apps/v1/DaemonSet"
	kServiceMonitor = "monitoring.coreos.com/v1/ServiceMonitor"
	kPodMonitor     = "monitoring.coreos.com/v1/PodMonitor"
	kPrometheusRule = "monitoring.coreos.com/v1/PrometheusRule"
	kNetworkPolicy  = "networking.k8s.io/v1/NetworkPolicy"
)

// want is what one rendering must hold.
type want struct {
	namespace string   // of every namespaced object
	kinds     []string // every object's kind, in any order
	image     string
	args      []string // the container's arguments, exactly
	port      int32    // the metrics port
	scheme    corev1.URIScheme
	caps      []string // capabilities added, exactly (dropped: ALL)
	seccomp   corev1.SeccompProfileType
	hostPaths map[string]string // hostPath volumes: name -> path, exactly
	rro       string            // recursiveReadOnly of the host mounts ("": unset)
	env       map[string]string // the container's environment, exactly
	headers   int               // the probes' extra HTTP headers
	secret    string            // the web config Secret mounted, if any
	resources corev1.ResourceRequirements
	hostPID   bool // --stacks only
}

// Defaults of both the kustomize base and the chart.
var (
	image         = "docker.io/library/tcpclose-trace:0.1.0"
	baseArgs      = []string{"serve", "--web.listen-address=:19180", "--log.format=json", "--log.level=info", "--pods=auto"}
	baseCaps      = []string{"BPF", "PERFMON"}
	baseEnv       = map[string]string{"GOMEMLIMIT": "96MiB"}
	baseResources = resources("50m", "64Mi", "500m", "128Mi")
	btf           = map[string]string{"btf": "/sys/kernel/btf"}
	cgroup        = map[string]string{"cgroup": "/sys/fs/cgroup"}
	containerd    = map[string]string{"containerd": "/run/containerd/io.containerd.runtime.v2.task"}
	crio          = map[string]string{"crio": "/run/containers/storage/overlay-containers"}
	docker        = map[string]string{"docker": "/var/lib/docker/containers"}
	kubeletPods   = map[string]string{"kubelet-pods": "/var/lib/kubelet/pods"}
)

// paths merges hostPath sets.
func paths(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// withStacks is what --stacks adds: the argument, the host's pid namespace
// and SYS_PTRACE (to read other processes' maps and files).
func withStacks(w *want) {
	w.args = append(w.args, "--stacks")
	w.caps = append(w.caps, "SYS_PTRACE")
	w.hostPID = true
}

// with returns a copy of w changed by f.
func with(w want, f func(*want)) want {
	w.kinds = slices.Clone(w.kinds)
	w.args = slices.Clone(w.args)
	w.caps = slices.Clone(w.caps)
	f(&w)
	return w
}

var kustomizeBase = want{
	namespace: "tcpclose-trace",
	kinds:     []string{kNamespace, kServiceAccount, kService, kDaemonSet, kServiceMonitor, kPrometheusRule},
	image:     image,
	args:      baseArgs,
	port:      19180,
	scheme:    corev1.URISchemeHTTP,
	caps:      baseCaps,
	seccomp:   corev1.SeccompProfileTypeRuntimeDefault,
	hostPaths: paths(btf, cgroup, containerd),
	rro:       "IfPossible",
	env:       baseEnv,
	resources: baseResources,
}

var helmDefault = with(kustomizeBase, func(w *want) {
	w.namespace = release.Namespace
	w.kinds = []string{kServiceAccount, kService, kDaemonSet, kServiceMonitor, kPrometheusRule}
})

// rendering is one way of producing the manifests and what it must give.
type rendering struct {
	name   string
	values string // the chart's values, for a Helm rendering
	render func(t *testing.T) ([]byte, error)
	want   want
}

func kustomizeRendering(name string, w want, components ...string) rendering {
	return rendering{"kustomize/" + name, "", func(t *testing.T) ([]byte, error) {
		if len(components) == 0 {
			return kustomizeBuild(kustomizeDir)
		}
		return kustomizeBuild(overlay(t, components...))
	}, w}
}

func helmRendering(name, values string, w want) rendering {
	return rendering{"helm/" + name, values, func(t *testing.T) ([]byte, error) {
		out, notes, err := helmTemplate(loadChart(t), values)
		if err == nil && !strings.Contains(notes, "pod-security.kubernetes.io/enforce=privileged") {
			t.Errorf("NOTES.txt does not say how to label the namespace:\n%s", notes)
		}
		return out, err
	}, w}
}

// renderings are every rendering the tests check: the kustomize base and
// its components, the chart with its defaults and with other values.
func renderings() []rendering {
	return []rendering{
		kustomizeRendering("base", kustomizeBase),
		kustomizeRendering("crio", with(kustomizeBase, func(w *want) { w.hostPaths = paths(btf, cgroup, crio) }), "crio"),
		kustomizeRendering("docker", with(kustomizeBase, func(w *want) { w.hostPaths = paths(btf, cgroup, docker) }), "docker"),
		kustomizeRendering("kubelet-pods", with(kustomizeBase, func(w *want) { w.hostPaths = paths(btf, cgroup, containerd, kubeletPods) }), "kubelet-pods"),
		kustomizeRendering("networkpolicy", with(kustomizeBase, func(w *want) { w.kinds = append(w.kinds, kNetworkPolicy) }), "networkpolicy"),
		kustomizeRendering("stacks", with(kustomizeBase, withStacks), "stacks"),
		kustomizeRendering("crio+kubelet-pods", with(kustomizeBase, func(w *want) { w.hostPaths = paths(btf, cgroup, crio, kubeletPods) }), "crio", "kubelet-pods"),

		helmRendering("default", "", helmDefault),
		helmRendering("tuned", `
image: {tag: 0.2.0-rc.1, pullPolicy: Always}
imagePullSecrets: [{name: regcred}]
fullnameOverride: tct
port: 29180
logFormat: logfmt
logLevel: debug
metricsByComm: 20
metricsByPod: 100
ringSize: 16M
extraArgs: ["--port=443"]
resources:
  requests: {cpu: 100m, memory: 96Mi}
  limits: {cpu: "1", memory: 256Mi}
goMemLimit: 200MiB
tolerations:
  - operator: Exists
  - {key: dedicated, operator: Equal, value: edge, effect: NoSchedule}
nodeSelector: {kubernetes.io/os: linux}
priorityClassName: system-node-critical
podLabels: {team: net}
podAnnotations: {example.com/owner: net}
serviceAccount: {annotations: {example.com/a: b}}
service: {annotations: {example.com/a: b}}
serviceMonitor:
  additionalLabels: {release: kps}
  interval: 15s
  scrapeTimeout: 10s
  relabelings: [{action: replace, targetLabel: cluster, replacement: prod}]
  metricRelabelings: [{action: drop, sourceLabels: [__name__], regex: go_.*}]
prometheusRule: {additionalLabels: {release: kps}}
`, with(helmDefault, func(w *want) {
			w.image = "docker.io/library/tcpclose-trace:0.2.0-rc.1"
			w.port = 29180
			w.args = []string{"serve", "--web.listen-address=:29180", "--log.format=logfmt", "--log.level=debug", "--pods=auto",
				"--metrics.by-comm=20", "--metrics.by-pod=100", "--ring-size=16M", "--port=443"}
			w.env = map[string]string{"GOMEMLIMIT": "200MiB"}
			w.resources = resources("100m", "96Mi", "1", "256Mi")
		})),
		helmRendering("web config and PodMonitor", `
webConfig: {secretName: tcpclose-trace-web, scheme: HTTPS}
probes:
  httpHeaders: [{name: Authorization, value: "Basic cHJvbWV0aGV1czpzZWNyZXQ="}]
service: {enabled: false}
serviceMonitor: {enabled: false}
podMonitor:
  enabled: true
  tlsConfig: {insecureSkipVerify: true}
  basicAuth:
    username: {name: tcpclose-trace-web, key: username}
    password: {name: tcpclose-trace-web, key: password}
`, with(helmDefault, func(w *want) {
			w.kinds = []string{kServiceAccount, kDaemonSet, kPodMonitor, kPrometheusRule}
			w.args = append(w.args, "--web.config.file=/etc/tcpclose-trace/web/web-config.yml")
			w.scheme = corev1.URISchemeHTTPS
			w.headers = 1
			w.secret = "tcpclose-trace-web"
		})),
		helmRendering("web config and ServiceMonitor", `
webConfig: {secretName: web, scheme: HTTPS}
serviceMonitor:
  tlsConfig: {insecureSkipVerify: true, serverName: tcpclose-trace}
`, with(helmDefault, func(w *want) {
			w.args = append(w.args, "--web.config.file=/etc/tcpclose-trace/web/web-config.yml")
			w.scheme = corev1.URISchemeHTTPS
			w.secret = "web"
		})),
		helmRendering("every runtime, kubelet, k3s paths", `
runtimes:
  containerd: {enabled: true, root: /run/k3s/containerd}
  crio: {enabled: true, root: /run/containers/storage}
  docker: {enabled: true, root: /var/lib/docker}
kubeletPods: {enabled: true, root: /var/lib/kubelet}
cgroupRoot: /sys/fs/cgroup/unified
hostMountsRecursiveReadOnly: Enabled
`, with(helmDefault, func(w *want) {
			w.args = append(w.args, "--containerd-root=/run/k3s/containerd", "--cgroup-root=/sys/fs/cgroup/unified")
			w.hostPaths = paths(btf, crio, docker, kubeletPods, map[string]string{
				"cgroup":     "/sys/fs/cgroup/unified",
				"containerd": "/run/k3s/containerd/io.containerd.runtime.v2.task",
			})
			w.rro = "Enabled"
		})),
		helmRendering("extra capability, own seccomp profile", `
securityContext:
  extraCapabilities: [SYS_ADMIN]
  seccompProfile: {type: Localhost, localhostProfile: profiles/tcpclose-trace.json}
hostMountsRecursiveReadOnly: ""
goMemLimit: ""
`, with(helmDefault, func(w *want) {
			w.caps = []string{"BPF", "PERFMON", "SYS_ADMIN"}
			w.seccomp = corev1.SeccompProfileTypeLocalhost
			w.rro = ""
			w.env = nil
		})),
		helmRendering("stacks", `
stacks: true
`, with(helmDefault, withStacks)),
		helmRendering("network policy", `
networkPolicy: {enabled: true}
`, with(helmDefault, func(w *want) { w.kinds = append(w.kinds, kNetworkPolicy) })),
		helmRendering("network policy for another scraper, other port", `
port: 29180
networkPolicy:
  enabled: true
  from:
    - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}
      podSelector: {matchLabels: {app: vmagent}}
`, with(helmDefault, func(w *want) {
			w.kinds = append(w.kinds, kNetworkPolicy)
			w.port = 29180
			w.args[1] = "--web.listen-address=:29180"
		})),
		helmRendering("pods off, no monitoring objects", `
pods: "off"
serviceAccount: {create: false}
serviceMonitor: {enabled: false}
prometheusRule: {enabled: false}
`, with(helmDefault, func(w *want) {
			w.kinds = []string{kService, kDaemonSet}
			w.args[4] = "--pods=off"
			w.hostPaths = btf
		})),
	}
}

func TestManifests(t *testing.T) {
	for _, r := range renderings() {
		t.Run(r.name, func(t *testing.T) {
			src, err := r.render(t)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeAll(src)
			if err != nil {
				t.Fatalf("%v\n%s", err, src)
			}
			checkObjects(t, objs, r.want)
			if t.Failed() {
				t.Logf("rendered:\n%s", src)
			}
		})
	}
}

// TestKustomizeAndHelmAgree: the kustomize base and the chart's defaults
// deploy the same pod (security context, mounts, probes, resources and
// all), the same Service and monitor endpoints and the same rules.
func TestKustomizeAndHelmAgree(t *testing.T) {
	k, err := kustomizeBuild(kustomizeDir)
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := helmTemplate(loadChart(t), "")
	if err != nil {
		t.Fatal(err)
	}
	ko, err := decodeAll(k)
	if err != nil {
		t.Fatal(err)
	}
	ho, err := decodeAll(h)
	if err != nil {
		t.Fatal(err)
	}
	kds, hds := one[appsv1.DaemonSet](t, ko, kDaemonSet), one[appsv1.DaemonSet](t, ho, kDaemonSet)
	if d := diff(kds.Spec.Template.Spec, hds.Spec.Template.Spec); d != "" {
		t.Errorf("pod specs differ (kustomize, helm): %s", d)
	}
	if d := diff(kds.Spec.Selector, hds.Spec.Selector); d != "" {
		t.Errorf("DaemonSet selectors differ (kustomize, helm): %s", d)
	}
	if d := diff(kds.Spec.UpdateStrategy, hds.Spec.UpdateStrategy); d != "" {
		t.Errorf("update strategies differ (kustomize, helm): %s", d)
	}
	for _, kind := range []string{kService, kServiceMonitor, kPrometheusRule} {
		kr, hr := ko.ofKind(kind), ho.ofKind(kind)
		if len(kr) != 1 || len(hr) != 1 {
			t.Errorf("%s: %d in kustomize, %d in helm; want one each", kind, len(kr), len(hr))
			continue
		}
		if d := diff(kr[0].raw["spec"], hr[0].raw["spec"]); d != "" {
			t.Errorf("%s specs differ (kustomize, helm): %s", kind, d)
		}
	}
}

// TestNetworkPolicyAgree: the kustomize component and the chart's value
// ship the same policy.
func TestNetworkPolicyAgree(t *testing.T) {
	k, err := kustomizeBuild(overlay(t, "networkpolicy"))
	if err != nil {
		t.Fatal(err)
	}
	h, _, err := helmTemplate(loadChart(t), "networkPolicy: {enabled: true}")
	if err != nil {
		t.Fatal(err)
	}
	ko, err := decodeAll(k)
	if err != nil {
		t.Fatal(err)
	}
	ho, err := decodeAll(h)
	if err != nil {
		t.Fatal(err)
	}
	kp, hp := ko.ofKind(kNetworkPolicy), ho.ofKind(kNetworkPolicy)
	if len(kp) != 1 || len(hp) != 1 {
		t.Fatalf("NetworkPolicy: %d in kustomize, %d in helm; want one each", len(kp), len(hp))
	}
	if d := diff(kp[0].raw["spec"], hp[0].raw["spec"]); d != "" {
		t.Errorf("NetworkPolicy specs differ (kustomize, helm): %s", d)
	}
}

// diff describes how two values differ, or returns "".
func diff(a, b any) string {
	if reflect.DeepEqual(a, b) {
		return ""
	}
	return "\n" + dump(a) + "\n----\n" + dump(b)
}

func TestChartRulesAreTheRulesFile(t *testing.T) {
	want, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(chartRules)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from %s: copy it (cp %s %s)", chartRules, rulesFile, rulesFile, chartRules)
	}
}

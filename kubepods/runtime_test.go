package kubepods_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/kubepods"
	"github.com/tcpclose-trace/tcpclose-trace/kubepods/kubepodstest"
)

// writeJSON writes v as JSON at path, creating the directories.
func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(b))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSourcesContainer(t *testing.T) {
	dir := t.TempDir()
	src := kubepods.Sources{
		Containerd: filepath.Join(dir, "containerd"),
		CRIO:       filepath.Join(dir, "crio"),
		Docker:     filepath.Join(dir, "docker"),
		Kubelet:    filepath.Join(dir, "kubelet"),
	}
	const (
		uid               = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
		idCD, idCDSandbox = "1111111111111111111111111111111111111111111111111111111111111111", "2222222222222222222222222222222222222222222222222222222222222222"
		idCRIO, idCRIOSb  = "3333333333333333333333333333333333333333333333333333333333333333", "4444444444444444444444444444444444444444444444444444444444444444"
		idDocker, idDkSb  = "5555555555555555555555555555555555555555555555555555555555555555", "6666666666666666666666666666666666666666666666666666666666666666"
		idBroken, idNoPod = "7777777777777777777777777777777777777777777777777777777777777777", "8888888888888888888888888888888888888888888888888888888888888888"
		idMissing         = "9999999999999999999999999999999999999999999999999999999999999999"
	)
	web := kubepods.Meta{Namespace: "shop", Pod: "web-7d4b9c-xk2lp", PodUID: uid, Container: "nginx"}
	if err := kubepodstest.WriteContainerdBundle(src.Containerd, idCD, web, false); err != nil {
		t.Fatal(err)
	}
	if err := kubepodstest.WriteContainerdBundle(src.Containerd, idCDSandbox, web, true); err != nil {
		t.Fatal(err)
	}
	if err := kubepodstest.WriteCRIOBundle(src.CRIO, idCRIO, web, false); err != nil {
		t.Fatal(err)
	}
	if err := kubepodstest.WriteCRIOBundle(src.CRIO, idCRIOSb, web, true); err != nil {
		t.Fatal(err)
	}
	if err := kubepodstest.WriteDockerConfig(src.Docker, idDocker, web, false); err != nil {
		t.Fatal(err)
	}
	if err := kubepodstest.WriteDockerConfig(src.Docker, idDkSb, web, true); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src.Containerd, "io.containerd.runtime.v2.task", "k8s.io", idBroken, "config.json"), "{not json")
	writeJSON(t, filepath.Join(src.Containerd, "io.containerd.runtime.v2.task", "k8s.io", idNoPod, "config.json"),
		map[string]any{"ociVersion": "1.2.0", "annotations": map[string]string{}})

	sandbox := web
	sandbox.Container = ""
	tests := []struct {
		name string
		id   string
		rt   kubepods.Runtime
		want kubepods.Meta
		ok   bool
	}{
		{"containerd container", idCD, kubepods.RuntimeContainerd, web, true},
		{"containerd sandbox", idCDSandbox, kubepods.RuntimeContainerd, sandbox, true},
		{"containerd, runtime unknown", idCD, kubepods.RuntimeUnknown, web, true},
		{"cri-o container", idCRIO, kubepods.RuntimeCRIO, web, true},
		{"cri-o sandbox", idCRIOSb, kubepods.RuntimeCRIO, sandbox, true},
		{"cri-o, runtime unknown", idCRIO, kubepods.RuntimeUnknown, web, true},
		{"docker container", idDocker, kubepods.RuntimeDocker, web, true},
		{"docker sandbox", idDkSb, kubepods.RuntimeDocker, sandbox, true},
		{"docker, runtime unknown", idDocker, kubepods.RuntimeUnknown, web, true},
		{"wrong runtime named", idDocker, kubepods.RuntimeContainerd, kubepods.Meta{}, false},
		{"malformed bundle", idBroken, kubepods.RuntimeContainerd, kubepods.Meta{}, false},
		{"bundle without pod annotations", idNoPod, kubepods.RuntimeContainerd, kubepods.Meta{}, false},
		{"missing", idMissing, kubepods.RuntimeUnknown, kubepods.Meta{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := src.Container(tt.id, tt.rt)
			if ok != tt.ok || got != tt.want {
				t.Errorf("Container(%s, %q) = %+v, %v; want %+v, %v", tt.id[:4], tt.rt, got, ok, tt.want, tt.ok)
			}
		})
	}
	if _, ok := (kubepods.Sources{}).Container(idCD, kubepods.RuntimeUnknown); ok {
		t.Error("with every source off, a container resolved")
	}
}

func TestSourcesPod(t *testing.T) {
	kubelet := t.TempDir()
	src := kubepods.Sources{Kubelet: kubelet}
	const (
		uidPlain   = "00000000-0000-0000-0000-000000000001"
		uidFQDN    = "00000000-0000-0000-0000-000000000002"
		uidAliases = "00000000-0000-0000-0000-000000000003"
		uidHostNet = "00000000-0000-0000-0000-000000000004"
		uidNoIP    = "00000000-0000-0000-0000-000000000005"
		uidNSOnly  = "00000000-0000-0000-0000-000000000006"
		uidMissing = "00000000-0000-0000-0000-000000000007"
	)
	if err := kubepodstest.WriteKubeletPod(kubelet, kubepods.Meta{PodUID: uidPlain, Pod: "api-0", Namespace: "prod"}, "10.244.1.7"); err != nil {
		t.Fatal(err)
	}
	hosts := func(u, body string) { writeFile(t, filepath.Join(kubelet, "pods", u, "etc-hosts"), body) }
	fixed := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
	hosts(uidFQDN, fixed+"10.244.1.8\tdb-0.db.prod.svc.cluster.local\tdb-0\nfd00::8\tdb-0.db.prod.svc.cluster.local\tdb-0\n")
	hosts(uidAliases, fixed+"10.244.1.9\tcache-1\n\n# Entries added by HostAliases.\n10.0.0.1\tfoo.local\tbar.local\n")
	hosts(uidHostNet, "# Kubernetes-managed hosts file (host network).\n127.0.0.1\tlocalhost\n10.0.0.5\tnode-3\n")
	hosts(uidNoIP, fixed)
	writeFile(t, filepath.Join(kubelet, "pods", uidNSOnly, "volumes", "kubernetes.io~projected", "kube-api-access-x7k2p", "namespace"), "batch\n")
	tests := []struct {
		uid  string
		want kubepods.Meta
		ok   bool
	}{
		{uidPlain, kubepods.Meta{PodUID: uidPlain, Pod: "api-0", Namespace: "prod"}, true},
		{uidFQDN, kubepods.Meta{PodUID: uidFQDN, Pod: "db-0"}, true},
		{uidAliases, kubepods.Meta{PodUID: uidAliases, Pod: "cache-1"}, true},
		{uidHostNet, kubepods.Meta{}, false},
		{uidNoIP, kubepods.Meta{}, false},
		{uidNSOnly, kubepods.Meta{PodUID: uidNSOnly, Namespace: "batch"}, true},
		{uidMissing, kubepods.Meta{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.uid[len(tt.uid)-1:], func(t *testing.T) {
			got, ok := src.Pod(tt.uid)
			if ok != tt.ok || got != tt.want {
				t.Errorf("Pod(%s) = %+v, %v; want %+v, %v", tt.uid, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestSourcesCheck(t *testing.T) {
	dir := t.TempDir()
	mk := func(p string) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, strings.SplitN(p, "/", 2)[0])
	}
	containerd := mk("cd/io.containerd.runtime.v2.task")
	crio := mk("crio/overlay-containers")
	kubelet := mk("kubelet/pods")
	bare := mk("bare")
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(dir, "none")
	defaults := kubepods.Sources{Containerd: filepath.Join(dir, "default-cd"), CRIO: filepath.Join(dir, "default-crio"),
		Docker: filepath.Join(dir, "default-docker"), Kubelet: filepath.Join(dir, "default-kubelet")}
	tests := []struct {
		name string
		s    kubepods.Sources
		pods bool
		want string
	}{
		{"all good", kubepods.Sources{Containerd: containerd, CRIO: crio, Kubelet: kubelet}, true, ""},
		{"all off", kubepods.Sources{}, true, ""},
		{"set, missing", kubepods.Sources{Containerd: none}, false, "containerd " + none + ": no such directory"},
		{"set, a file", kubepods.Sources{Docker: file}, false, "docker " + file + ": not a directory"},
		{"set, not the state dir", kubepods.Sources{Containerd: bare, Kubelet: bare}, false,
			"containerd " + bare + ": no io.containerd.runtime.v2.task in it|kubelet " + bare + ": no pods in it"},
		{"defaults missing, no pods", defaults, false, ""},
		{"defaults missing, pods", defaults, true, "containerd " + defaults.Containerd + ": no such directory|cri-o " +
			defaults.CRIO + ": no such directory|docker " + defaults.Docker + ": no such directory"},
		{"defaults missing but one runtime set", kubepods.Sources{Containerd: defaults.Containerd, CRIO: crio}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, p := range tt.s.Check(defaults, tt.pods) {
				got = append(got, p.Source+" "+p.Path+": "+p.Reason)
			}
			if g := strings.Join(got, "|"); g != tt.want {
				t.Errorf("Check = %q, want %q", g, tt.want)
			}
		})
	}
}

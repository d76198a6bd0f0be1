package kubepods

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// writeBundle writes a containerd bundle with the annotations the resolver
// reads (kubepodstest has the full fixtures; it cannot be imported here).
func writeBundle(t testing.TB, root, id string, m Meta) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"annotations": map[string]string{
		cdPodName: m.Pod, cdPodNamespace: m.Namespace, cdPodUID: m.PodUID,
		cdContainerName: m.Container, cdContainerType: "container",
	}})
	p := filepath.Join(root, "io.containerd.runtime.v2.task", containerdNamespace, id, "config.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func removeBundle(t *testing.T, root, id string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(root, "io.containerd.runtime.v2.task", containerdNamespace, id)); err != nil {
		t.Fatal(err)
	}
}

func writeKubelet(root string, m Meta) error {
	dir := filepath.Join(root, "pods", m.PodUID)
	if err := os.MkdirAll(filepath.Join(dir, "volumes", "kubernetes.io~projected", "token"), 0o755); err != nil {
		return err
	}
	hosts := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n10.1.2.3\t" + m.Pod + "\n"
	if err := os.WriteFile(filepath.Join(dir, "etc-hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "volumes", "kubernetes.io~projected", "token", "namespace"), []byte(m.Namespace), 0o644)
}

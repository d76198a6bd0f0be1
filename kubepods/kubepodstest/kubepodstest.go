// Package kubepodstest writes the node state that package kubepods reads,
// laid out as containerd, CRI-O, Docker (cri-dockerd) and the kubelet lay
// it out, for tests.
package kubepodstest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tcpclose-trace/tcpclose-trace/kubepods"
)

// WriteContainerdBundle writes the OCI bundle containerd's CRI plugin keeps
// for container id under its state directory root, with the annotations
// it sets; sandbox marks the pod's pause container.
func WriteContainerdBundle(root, id string, m kubepods.Meta, sandbox bool) error {
	a := map[string]string{
		"io.kubernetes.cri.sandbox-name":      m.Pod,
		"io.kubernetes.cri.sandbox-namespace": m.Namespace,
		"io.kubernetes.cri.sandbox-uid":       m.PodUID,
		"io.kubernetes.cri.sandbox-id":        id,
	}
	if sandbox {
		a["io.kubernetes.cri.container-type"] = "sandbox"
		a["io.kubernetes.cri.sandbox-log-directory"] = "/var/log/pods/" + m.Namespace + "_" + m.Pod + "_" + m.PodUID
	} else {
		a["io.kubernetes.cri.container-type"] = "container"
		a["io.kubernetes.cri.container-name"] = m.Container
		a["io.kubernetes.cri.image-name"] = "registry.invalid/" + m.Container + ":1.0"
	}
	return writeJSON(filepath.Join(root, "io.containerd.runtime.v2.task", "k8s.io", id, "config.json"), ociSpec(a))
}

// WriteCRIOBundle writes the OCI bundle CRI-O keeps for container id under
// its run root, with the annotations it sets.
func WriteCRIOBundle(root, id string, m kubepods.Meta, sandbox bool) error {
	a := map[string]string{
		"io.kubernetes.pod.name":          m.Pod,
		"io.kubernetes.pod.namespace":     m.Namespace,
		"io.kubernetes.pod.uid":           m.PodUID,
		"io.kubernetes.cri-o.ContainerID": id,
	}
	if sandbox {
		a["io.kubernetes.cri-o.ContainerType"] = "sandbox"
		a["io.kubernetes.container.name"] = "POD"
	} else {
		a["io.kubernetes.cri-o.ContainerType"] = "container"
		a["io.kubernetes.container.name"] = m.Container
	}
	return writeJSON(filepath.Join(root, "overlay-containers", id, "userdata", "config.json"), ociSpec(a))
}

// WriteDockerConfig writes Docker's configuration of container id under its
// data root, with the labels cri-dockerd sets (its sandbox is named "POD").
func WriteDockerConfig(root, id string, m kubepods.Meta, sandbox bool) error {
	name := m.Container
	if sandbox {
		name = "POD"
	}
	cfg := map[string]any{
		"ID":   id,
		"Name": fmt.Sprintf("/k8s_%s_%s_%s_%s_0", name, m.Pod, m.Namespace, m.PodUID),
		"Config": map[string]any{
			"Hostname": m.Pod,
			"Labels": map[string]string{
				"io.kubernetes.container.name": name,
				"io.kubernetes.pod.name":       m.Pod,
				"io.kubernetes.pod.namespace":  m.Namespace,
				"io.kubernetes.pod.uid":        m.PodUID,
				"io.kubernetes.docker.type":    map[bool]string{true: "podsandbox", false: "container"}[sandbox],
			},
		},
	}
	return writeJSON(filepath.Join(root, "containers", id, "config.v2.json"), cfg)
}

// WriteKubeletPod writes the kubelet's directory of pod m.PodUID: the hosts
// file it manages (with the pod's address ip) and the namespace file of the
// service account volume.
func WriteKubeletPod(root string, m kubepods.Meta, ip string) error {
	dir := filepath.Join(root, "pods", m.PodUID)
	hosts := "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
		ip + "\t" + m.Pod + "\n"
	if err := writeFile(filepath.Join(dir, "etc-hosts"), []byte(hosts)); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "volumes", "kubernetes.io~projected", "kube-api-access-q8x2z", "namespace"), []byte(m.Namespace))
}

// ociSpec is the part of an OCI runtime config that matters here.
func ociSpec(annotations map[string]string) map[string]any {
	return map[string]any{
		"ociVersion":  "1.2.0",
		"process":     map[string]any{"args": []string{"/app"}, "cwd": "/"},
		"root":        map[string]any{"path": "rootfs"},
		"annotations": annotations,
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return writeFile(path, b)
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

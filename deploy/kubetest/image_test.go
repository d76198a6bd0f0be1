package kubetest

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageName builds an image archive with the project's packer
// (tools/tcpclose-mkimage, as `make image` runs it) at the chart's appVersion
// and checks that the name it writes into the archive's index, which
// containerd's import stores, is the image the manifests and the chart
// deploy: loaded without a registry, the image must be found by the kubelet
// under that name.
func TestImageName(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("skipped: the go command builds the packer and a binary to pack")
	}
	dir := t.TempDir()
	// Any static binary will do: the packer reads only its ELF header.
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module tiny\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command(goTool, "build", "-o", "tiny", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build a static binary: %v\n%s", err, out)
	}

	version := image[strings.LastIndex(image, ":")+1:] // the chart's appVersion (TestChartKubeVersion)
	archive := filepath.Join(dir, "image.tar")
	mk := exec.Command(goTool, "run", "./tools/tcpclose-mkimage", "-binary", filepath.Join(dir, "tiny"),
		"-o", archive, "-version", version, "-source-date-epoch", "0")
	mk.Dir = "../.."
	out, err := mk.CombinedOutput()
	if err != nil {
		t.Fatalf("tcpclose-mkimage: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), " "+image+" ") {
		t.Errorf("tcpclose-mkimage printed %q, not the name %s", out, image)
	}

	var index struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(readTarFile(t, archive, "index.json"), &index); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	if len(index.Manifests) != 1 {
		t.Fatalf("index.json: %d manifests, want 1", len(index.Manifests))
	}
	a := index.Manifests[0].Annotations
	if got := a["io.containerd.image.name"]; got != image {
		t.Errorf("the archive names the image %q (io.containerd.image.name); the manifests deploy %q", got, image)
	}
	if got := a["org.opencontainers.image.ref.name"]; got != version {
		t.Errorf("org.opencontainers.image.ref.name %q, want the tag %q", got, version)
	}
	// A fully qualified name: registry host, path, tag (containerd stores
	// names as given; the kubelet asks for the normalized form).
	if parts := strings.Split(strings.Split(image, ":")[0], "/"); len(parts) < 3 || !strings.Contains(parts[0], ".") {
		t.Errorf("image %q is not fully qualified (registry/path/name:tag)", image)
	}
}

// readTarFile returns the contents of file name in the tar archive at path.
func readTarFile(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s: no %s", path, name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMoveAll(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   []string
		wantErr string
	}{
		{"object and bindings", []string{"x_bpfel.o", "x_bpfel.go"}, ""},
		{"nothing written", nil, "wrote no files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := t.TempDir(), t.TempDir()
			for _, f := range tc.files {
				if err := os.WriteFile(filepath.Join(from, f), []byte("new "+f), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(to, f), []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := moveAll(from, to)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("moveAll: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tc.files {
				got, err := os.ReadFile(filepath.Join(to, f))
				if err != nil || string(got) != "new "+f {
					t.Errorf("%s: %q, %v; want the new content", f, got, err)
				}
			}
		})
	}
}

// TestFailedBuildKeepsFiles runs the real bpf2go on a source that includes a
// header nobody has (as a machine without libbpf-dev would): the committed
// files must stay as they were and no scratch directory may be left behind.
func TestFailedBuildKeepsFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds bpf2go; not in -short")
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "bpf")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	committed := map[string]string{"tcpclose_bpfel.o": "committed object", "tcpclose_bpfel.go": "committed bindings"}
	for name, content := range committed {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(parent, "broken.c")
	if err := os.WriteFile(src, []byte("#include <bpf/no_such_header.h>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// With the pinned compiler present the failure is the missing header, as
	// on a machine without libbpf-dev; without it, the missing compiler.
	if _, err := exec.LookPath("clang-19"); err == nil {
		t.Setenv("BPF2GO_CC", "clang-19")
		t.Setenv("BPF2GO_STRIP", "llvm-strip-19")
	}
	err := run(dir, []string{"-go-package", "bpf", "-target", "bpfel", "Tcpclose", src})
	if err == nil || !strings.Contains(err.Error(), "left unchanged") {
		t.Fatalf("run: %v, want a failure that leaves the directory unchanged", err)
	}
	for name, content := range committed {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != content {
			t.Errorf("%s after a failed build: %q, %v; want %q", name, got, err, content)
		}
	}
	left, _ := filepath.Glob(filepath.Join(parent, ".bpfgen-*"))
	if len(left) != 0 {
		t.Errorf("scratch directories left behind: %v", left)
	}
}

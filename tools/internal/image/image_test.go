package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func listTar(raw []byte) ([]tarEntry, error) {
	var entries []tarEntry
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		entries = append(entries, tarEntry{hdr, data})
	}
}

func archiveBytes(t *testing.T, opts Options) ([]byte, *Image) {
	t.Helper()
	img, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteArchive(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), img
}

// tinyBinary builds a small static program: quicker to pack than the real
// binary when only the packing is under test.
func tinyBinary(t *testing.T) []byte {
	t.Helper()
	// go test puts its own GOROOT/bin first on the PATH of the test.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command: %v", err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module tiny\n\ngo 1.26\n",
		"main.go": "package main\n\nfunc main() { println(\"tiny\") }\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", "tiny", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build a tiny static program: %v\n%s", err, out)
	}
	return readFile(t, filepath.Join(dir, "tiny"))
}

// Equal inputs give equal bytes; any input that changes gives another digest.
func TestBuildIsDeterministic(t *testing.T) {
	bin := tinyBinary(t)
	base := Options{Binary: bin, Version: "v1", Revision: "abc", Created: time.Unix(testEpoch, 0)}
	baseArchive, baseImg := archiveBytes(t, base)
	if _, err := readArchive(baseArchive); err != nil {
		t.Fatalf("archive does not read back: %v", err)
	}
	tests := []struct {
		name   string
		change func(*Options)
		same   bool
	}{
		{"same inputs", func(*Options) {}, true},
		{"same time in another zone", func(o *Options) { o.Created = o.Created.In(time.FixedZone("X", 3600)) }, true},
		{"sub-second part of the time", func(o *Options) { o.Created = o.Created.Add(time.Millisecond) }, true},
		{"version", func(o *Options) { o.Version = "v2" }, false},
		{"revision", func(o *Options) { o.Revision = "abd" }, false},
		{"time", func(o *Options) { o.Created = o.Created.Add(time.Second) }, false},
		{"source", func(o *Options) { o.Source = "https://example.invalid/fork" }, false},
		{"binary", func(o *Options) { o.Binary = append(append([]byte(nil), bin...), 0) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := base
			tt.change(&opts)
			archive, img := archiveBytes(t, opts)
			if tt.same {
				if img.Digest != baseImg.Digest || !bytes.Equal(archive, baseArchive) {
					t.Errorf("digest %s, want %s and the same archive bytes", img.Digest, baseImg.Digest)
				}
			} else if img.Digest == baseImg.Digest || img.ConfigDigest == baseImg.ConfigDigest {
				t.Errorf("digest %s and image id %s did not change", img.Digest, img.ConfigDigest)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	bin := readFile(t, builtImage(t).binary)
	tests := []struct {
		name string
		opts Options
		err  string
	}{
		{"no version", Options{Binary: bin, Created: time.Unix(1, 0)}, "empty version"},
		{"no time", Options{Binary: bin, Version: "v1"}, "no creation time"},
		{"not a binary", Options{Binary: []byte("#!/bin/sh\n"), Version: "v1", Created: time.Unix(1, 0)}, "read elf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Build(tt.opts); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func TestCheckStatic(t *testing.T) {
	static := readFile(t, builtImage(t).binary)
	withMachine := func(m elf.Machine) []byte {
		b := append([]byte(nil), static...)
		binary.LittleEndian.PutUint16(b[18:], uint16(m)) // e_machine
		return b
	}
	tests := []struct {
		name string
		bin  []byte
		arch string
		err  string
	}{
		{"the static build", static, runtime.GOARCH, ""},
		{"arm64", withMachine(elf.EM_AARCH64), "arm64", ""},
		{"another machine", withMachine(elf.EM_RISCV), "", "not supported"},
		{"not elf", []byte("#!/bin/sh\necho hi\n"), "", "read elf"},
		{"empty", nil, "", "read elf"},
	}
	// A dynamically linked program of the host (coreutils, dash), if any.
	for _, p := range []string{"/bin/sh", "/usr/bin/env", "/bin/true"} {
		if b, err := os.ReadFile(p); err == nil && bytes.HasPrefix(b, []byte(elf.ELFMAG)) && hasInterp(b) {
			tests = append(tests, struct {
				name string
				bin  []byte
				arch string
				err  string
			}{"dynamic " + p, b, "", "PT_INTERP"})
			break
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arch, err := CheckStatic(tt.bin)
			if tt.err == "" {
				if err != nil || arch != tt.arch {
					t.Errorf("got %q, %v; want %q", arch, err, tt.arch)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want one containing %q", err, tt.err)
			}
		})
	}
}

func hasInterp(b []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

func TestTag(t *testing.T) {
	tests := []struct{ version, tag string }{
		{"v1.2.3", "v1.2.3"},
		{"5535354-dirty", "5535354-dirty"},
		{"v1.0.0+meta/x", "v1.0.0-meta-x"},
		{"-x", "x"},
		{"", "latest"},
		{strings.Repeat("a", 200), strings.Repeat("a", 128)},
	}
	for _, tt := range tests {
		if got := Tag(tt.version); got != tt.tag {
			t.Errorf("Tag(%q) = %q, want %q", tt.version, got, tt.tag)
		}
	}
}

// The Dockerfile builds the same image as `make image`: the same build
// flags, base files, command, user, port and labels. Docker itself is not
// available to the tests, so this keeps the two recipes from drifting.
func TestDockerfileMatchesMakefile(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	makefile := string(readFile(t, filepath.Join(root, "Makefile")))
	dockerfile := string(readFile(t, filepath.Join(root, "Dockerfile")))
	dockerfile = strings.ReplaceAll(dockerfile, "\\\n", " ")

	makeVar := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `\s*:?=\s*(.*)$`).FindStringSubmatch(makefile)
		if m == nil {
			t.Fatalf("Makefile sets no %s", name)
		}
		return strings.TrimSpace(m[1])
	}
	flags := makeVar("STATIC_FLAGS")
	ldflags := strings.ReplaceAll(makeVar("STATIC_LDFLAGS"), "$(VERSION)", "${VERSION}")
	staticRule := regexp.MustCompile(`(?m)^\s+(CGO_ENABLED=0 .*\$\(GO\) build .*)$`).FindStringSubmatch(makefile)
	if staticRule == nil || !strings.Contains(staticRule[1], "$(STATIC_FLAGS) -ldflags \"$(STATIC_LDFLAGS)\"") {
		t.Fatalf("Makefile: the static rule does not build with CGO_ENABLED=0 $(STATIC_FLAGS) -ldflags \"$(STATIC_LDFLAGS)\"")
	}
	build := regexp.MustCompile(`(?m)^RUN .*\bgo build\b.*$`).FindString(dockerfile)
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", " " + flags + " ", `-ldflags "` + ldflags + `"`, "./cmd/tcpclose-trace"} {
		if !strings.Contains(build, want) {
			t.Errorf("Dockerfile go build %q lacks %q (the Makefile's static build has it)", build, want)
		}
	}

	jsonArray := func(s []string) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := []string{
		"FROM scratch",
		"ENTRYPOINT " + jsonArray(Entrypoint),
		"CMD " + jsonArray(Cmd),
		"USER " + User,
		"EXPOSE " + MetricsPort,
		"tools/internal/image/rootfs/etc/passwd",
		"tools/internal/image/rootfs/etc/group",
		"mkdir -m 1777",
	}
	_, a := builtArchive(t)
	for label := range a.config.Config.Labels {
		want = append(want, label+"=")
	}
	for _, w := range want {
		if !strings.Contains(dockerfile, w) {
			t.Errorf("Dockerfile lacks %q, which the image of make image has", w)
		}
	}
}

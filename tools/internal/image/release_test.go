package image

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
)

// The inputs of the test image: fixed, so that two builds must agree.
const (
	testVersion  = "v0.0.0-imagetest"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testEpoch    = 1700000000 // 2023-11-14T22:13:20Z
)

// release is one `make image` run into a directory of its own.
type release struct {
	binary, archive string
	output          string // what make printed
	digest          string // the image digest it printed
}

var (
	sharedDir     string
	sharedOnce    sync.Once
	sharedRelease *release
	sharedErr     error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	os.Exit(code)
}

// makeImage runs `make image` of this repository with the test inputs,
// writing the static binary and the archive under dir.
func makeImage(t *testing.T, dir string) (*release, error) {
	t.Helper()
	mk := testenv.RequireTool(t, "make", "make")
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "Makefile")); err != nil {
		return nil, fmt.Errorf("repository root: %w", err)
	}
	r := &release{binary: filepath.Join(dir, "linux", "tcpclose-trace"), archive: filepath.Join(dir, "image.tar")}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, mk, "-s", "-C", root, "image",
		"VERSION="+testVersion, "REVISION="+testRevision, fmt.Sprintf("SOURCE_DATE_EPOCH=%d", testEpoch),
		"STATIC_BIN="+r.binary, "IMAGE="+r.archive)
	// Under `make test`, the outer make's flags and variables must not
	// reach this one.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "MAKEFLAGS" && name != "MFLAGS" && name != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	r.output = string(out)
	if err != nil {
		return nil, fmt.Errorf("make image: %w\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^image digest (sha256:[0-9a-f]{64})$`).FindStringSubmatch(r.output)
	if m == nil {
		return nil, fmt.Errorf("make image printed no image digest:\n%s", out)
	}
	r.digest = m[1]
	return r, nil
}

// builtImage is the image of the first `make image` run, shared by the tests.
func builtImage(t *testing.T) *release {
	t.Helper()
	sharedOnce.Do(func() {
		if sharedDir, sharedErr = os.MkdirTemp("", "tcpclose-image-test-"); sharedErr == nil {
			sharedRelease, sharedErr = makeImage(t, sharedDir)
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedRelease
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func builtArchive(t *testing.T) (*release, *ociArchive) {
	t.Helper()
	r := builtImage(t)
	a, err := readArchive(readFile(t, r.archive))
	if err != nil {
		t.Fatalf("%s: %v", r.archive, err)
	}
	return r, a
}

// `make image` twice from the same commit and inputs: the same binary, the
// same archive bytes, the same digest.
func TestMakeImageIsReproducible(t *testing.T) {
	first := builtImage(t)
	second, err := makeImage(t, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, first.binary), readFile(t, second.binary)) {
		t.Errorf("two static builds differ: %s and %s", first.binary, second.binary)
	}
	if !bytes.Equal(readFile(t, first.archive), readFile(t, second.archive)) {
		t.Errorf("two image archives differ: %s and %s", first.archive, second.archive)
	}
	if first.digest != second.digest {
		t.Errorf("digests differ: %s and %s", first.digest, second.digest)
	}
	_, a := builtArchive(t)
	if got := a.index.Manifests[0].Digest; got != first.digest {
		t.Errorf("make image printed %s, index.json names %s", first.digest, got)
	}
}

// The config says how the image runs: the daemon, as root, on its port,
// with the OCI labels.
func TestImageConfig(t *testing.T) {
	_, a := builtArchive(t)
	c := a.config
	created := time.Unix(testEpoch, 0).UTC()
	checks := []struct {
		what      string
		got, want any
	}{
		{"os", c.OS, "linux"},
		{"architecture", c.Architecture, runtime.GOARCH},
		{"created", c.Created.UTC(), created},
		{"entrypoint", c.Config.Entrypoint, []string{"/tcpclose-trace"}},
		{"cmd", c.Config.Cmd, []string{"serve"}},
		{"user", c.Config.User, "0:0"},
		{"exposed ports", c.Config.ExposedPorts, map[string]struct{}{"19180/tcp": {}}},
		{"env", c.Config.Env, []string(nil)},
		{"labels", c.Config.Labels, map[string]string{
			"org.opencontainers.image.title":       "tcpclose-trace",
			"org.opencontainers.image.description": Description,
			"org.opencontainers.image.source":      "https://github.com/tcpclose-trace/tcpclose-trace",
			"org.opencontainers.image.version":     testVersion,
			"org.opencontainers.image.revision":    testRevision,
			"org.opencontainers.image.licenses":    "MIT",
			"org.opencontainers.image.created":     "2023-11-14T22:13:20Z",
		}},
		{"rootfs type", c.RootFS.Type, "layers"},
		{"history entries", len(c.History), len(a.manifest.Layers)},
		{"platform", *a.index.Manifests[0].Platform, struct{ Architecture, OS string }{runtime.GOARCH, "linux"}},
		{"index annotations", a.index.Manifests[0].Annotations, map[string]string{
			"org.opencontainers.image.ref.name": testVersion,
			"io.containerd.image.name":          "docker.io/library/tcpclose-trace:" + testVersion,
		}},
	}
	for _, ck := range checks {
		if fmt.Sprint(ck.got) != fmt.Sprint(ck.want) {
			t.Errorf("%s: got %v, want %v", ck.what, ck.got, ck.want)
		}
	}
	for i, h := range c.History {
		if !h.Created.Equal(created) {
			t.Errorf("history %d created %v, want %v", i, h.Created, created)
		}
	}
	if !strings.Contains(string(readFile(t, filepath.Join("..", "..", "..", "LICENSE"))), "MIT License") {
		t.Error("the licenses label says MIT but LICENSE is not the MIT license")
	}
}

// Every layer is a deterministic tar: sorted, owned by 0:0 without names,
// every time SOURCE_DATE_EPOCH; and the whole image holds only the binary
// and the base files.
func TestImageLayers(t *testing.T) {
	r, a := builtArchive(t)
	var got []string
	for i, l := range a.layers {
		raw, err := gunzip(l)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := listTar(raw)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		var prev string
		for _, e := range entries {
			h := e.hdr
			if h.Name <= prev {
				t.Errorf("layer %d: %s after %s: not sorted", i, h.Name, prev)
			}
			prev = h.Name
			if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
				t.Errorf("layer %d: %s owned by %d:%d (%q:%q), want 0:0 without names", i, h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
			}
			if !h.ModTime.Equal(time.Unix(testEpoch, 0)) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
				t.Errorf("layer %d: %s times %v/%v/%v, want only mtime %d", i, h.Name, h.ModTime, h.AccessTime, h.ChangeTime, testEpoch)
			}
			line := fmt.Sprintf("%d %s %v", i, h.Name, h.FileInfo().Mode())
			if h.Name == "tcpclose-trace" {
				if !bytes.Equal(e.data, readFile(t, r.binary)) {
					t.Errorf("layer %d: /tcpclose-trace is not the static binary make built", i)
				}
			} else if h.Size > 0 {
				line += fmt.Sprintf(" %q", e.data)
			}
			got = append(got, line)
		}
	}
	want := []string{
		`0 etc/ drwxr-xr-x`,
		`0 etc/group -rw-r--r-- "root:x:0:\n"`,
		`0 etc/passwd -rw-r--r-- "root:x:0:0:root:/:/sbin/nologin\n"`,
		`0 tmp/ dtrwxrwxrwx`,
		`1 tcpclose-trace -rwxr-xr-x`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("layers hold:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantNames := []string{"oci-layout", "index.json", "blobs/", "blobs/sha256/"}
	if got := a.names[:len(wantNames)]; fmt.Sprint(got) != fmt.Sprint(wantNames) {
		t.Errorf("archive starts with %v, want %v", got, wantNames)
	}
}

// The binary in the image is static: no interpreter, no shared library.
func TestImageBinaryIsStatic(t *testing.T) {
	_, a := builtArchive(t)
	root := t.TempDir()
	if err := a.unpack(root); err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(filepath.Join(root, "tcpclose-trace"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a PT_INTERP program header: it needs a dynamic loader")
		}
	}
	if f.Section(".interp") != nil || f.Section(".dynamic") != nil {
		t.Error("the binary has an .interp or .dynamic section")
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v (%v)", libs, err)
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary has a symbol table: -s did not strip it")
	}
}

// The unpacked image runs as it would in a container: chrooted into the
// image's root filesystem, with nothing of the host's.
func TestImageRunsInChroot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: chroot needs root (CAP_SYS_CHROOT); `sudo make test` runs it")
	}
	_, a := builtArchive(t)
	root := t.TempDir()
	if err := a.unpack(root); err != nil {
		t.Fatal(err)
	}
	oneLine := func(prefix string) func(string) error {
		return func(s string) error {
			if !strings.HasPrefix(s, prefix) || strings.Count(s, "\n") != 1 || !strings.HasSuffix(s, "\n") {
				return fmt.Errorf("want one line starting %q", prefix)
			}
			return nil
		}
	}
	contains := func(sub string) func(string) error {
		return func(s string) error {
			if !strings.Contains(s, sub) {
				return fmt.Errorf("want it to contain %q", sub)
			}
			return nil
		}
	}
	empty := func(s string) error {
		if s != "" {
			return errors.New("want nothing")
		}
		return nil
	}
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr func(string) error
	}{
		{"version", []string{"--version"}, 0, oneLine("tcpclose-trace " + testVersion + "\n"), empty},
		{"help", []string{"-h"}, 0, empty, contains("Usage: tcpclose-trace [flags]")},
		{"serve help", []string{"serve", "-h"}, 0, empty, contains("-web.listen-address")},
		{"bad flag", []string{"serve", "--no-such-flag"}, 2, empty, oneLine("tcpclose-trace: flag provided but not defined: -no-such-flag\n")},
		{"bad value", []string{"serve", "--web.listen-address="}, 2, empty, oneLine("tcpclose-trace: --web.listen-address must not be empty\n")},
		// The binary gets as far as the kernel: the image has no /sys,
		// as a container without the host's /sys mounted has not.
		{"no kernel BTF in the image", []string{"--duration", "1s"}, 1, empty, func(s string) error {
			if err := oneLine("tcpclose-trace: ")(s); err != nil {
				return err
			}
			return contains("BTF")(s)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "/tcpclose-trace", tt.args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
			cmd.Dir = "/"
			cmd.Env = []string{"HOME=/"}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exitErr *exec.ExitError
			code := 0
			if errors.As(err, &exitErr) {
				code = exitErr.ExitCode()
			} else if err != nil {
				t.Fatalf("run in chroot: %v", err)
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if err := tt.stdout(stdout.String()); err != nil {
				t.Errorf("stdout %q: %v", stdout.String(), err)
			}
			if err := tt.stderr(stderr.String()); err != nil {
				t.Errorf("stderr %q: %v", stderr.String(), err)
			}
		})
	}
}

// skopeo, the reference reader of the containers tools (podman's library),
// reads the archive: same digest, and it converts it into a docker archive.
func TestSkopeoReadsArchive(t *testing.T) {
	skopeo := testenv.RequireTool(t, "skopeo", "skopeo")
	r := builtImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, skopeo, "inspect", "oci-archive:"+r.archive).Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var info struct {
		Digest, Architecture, Os string
		Labels                   map[string]string
		Layers                   []string
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("skopeo inspect: %v: %s", err, out)
	}
	if info.Digest != r.digest || info.Architecture != runtime.GOARCH || info.Os != "linux" ||
		info.Labels["org.opencontainers.image.version"] != testVersion || len(info.Layers) != 2 {
		t.Errorf("skopeo inspect: %+v; want digest %s, linux/%s, version %s, 2 layers", info, r.digest, runtime.GOARCH, testVersion)
	}
	dockerArchive := filepath.Join(t.TempDir(), "docker.tar")
	cmd := exec.CommandContext(ctx, skopeo, "--insecure-policy", "copy", "-q",
		"oci-archive:"+r.archive, "docker-archive:"+dockerArchive+":tcpclose-trace:"+testVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy to a docker archive: %v\n%s", err, out)
	}
	if fi, err := os.Stat(dockerArchive); err != nil || fi.Size() < 1<<20 {
		t.Errorf("skopeo wrote no docker archive: %v", err)
	}
}

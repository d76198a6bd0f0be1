package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// This file reads an OCI image archive back with the standard library only,
// independently of the builder: every blob is checked against its digest and
// size, and layers are applied to a directory as an engine would.

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform"`
}

type indexJSON struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type manifestJSON struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type configJSON struct {
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Created      time.Time `json:"created"`
	Config       struct {
		User         string              `json:"User"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Env          []string            `json:"Env"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		WorkingDir   string              `json:"WorkingDir"`
		Labels       map[string]string   `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	} `json:"history"`
}

// ociArchive is an OCI image archive holding one image, read and verified.
type ociArchive struct {
	names    []string // tar entries in archive order
	index    indexJSON
	manifest manifestJSON
	config   configJSON
	layers   [][]byte // compressed, in manifest order
}

// readArchive reads and verifies an OCI image archive with one image.
func readArchive(data []byte) (*ociArchive, error) {
	files := map[string][]byte{}
	a := &ociArchive{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		a.names = append(a.names, hdr.Name)
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		if _, dup := files[hdr.Name]; dup {
			return nil, fmt.Errorf("archive: %s twice", hdr.Name)
		}
		if files[hdr.Name], err = io.ReadAll(tr); err != nil {
			return nil, fmt.Errorf("read %s: %w", hdr.Name, err)
		}
	}
	var layout struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(files["oci-layout"], &layout); err != nil || layout.Version != "1.0.0" {
		return nil, fmt.Errorf("oci-layout %q: not an OCI image layout 1.0.0 (%v)", files["oci-layout"], err)
	}
	if err := json.Unmarshal(files["index.json"], &a.index); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if a.index.SchemaVersion != 2 || a.index.MediaType != "application/vnd.oci.image.index.v1+json" || len(a.index.Manifests) != 1 {
		return nil, fmt.Errorf("index.json: want one manifest in an OCI index, got %+v", a.index)
	}
	used := map[string]bool{}
	blob := func(d descriptor, mediaType string) ([]byte, error) {
		if d.MediaType != mediaType {
			return nil, fmt.Errorf("blob %s: media type %q, want %q", d.Digest, d.MediaType, mediaType)
		}
		hexDigest, ok := strings.CutPrefix(d.Digest, "sha256:")
		if !ok {
			return nil, fmt.Errorf("blob %s: not a sha256 digest", d.Digest)
		}
		name := "blobs/sha256/" + hexDigest
		b, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("blob %s: not in the archive", d.Digest)
		}
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hexDigest {
			return nil, fmt.Errorf("blob %s: content does not match its digest", d.Digest)
		}
		if int64(len(b)) != d.Size {
			return nil, fmt.Errorf("blob %s: %d bytes, descriptor says %d", d.Digest, len(b), d.Size)
		}
		used[name] = true
		return b, nil
	}
	raw, err := blob(a.index.Manifests[0], "application/vnd.oci.image.manifest.v1+json")
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &a.manifest); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if a.manifest.SchemaVersion != 2 || a.manifest.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		return nil, fmt.Errorf("manifest: not an OCI image manifest: %s", raw)
	}
	if raw, err = blob(a.manifest.Config, "application/vnd.oci.image.config.v1+json"); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, &a.config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(a.config.RootFS.DiffIDs) != len(a.manifest.Layers) {
		return nil, fmt.Errorf("config has %d diff_ids for %d layers", len(a.config.RootFS.DiffIDs), len(a.manifest.Layers))
	}
	for i, l := range a.manifest.Layers {
		b, err := blob(l, "application/vnd.oci.image.layer.v1.tar+gzip")
		if err != nil {
			return nil, err
		}
		raw, err := gunzip(b)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if sum := sha256.Sum256(raw); "sha256:"+hex.EncodeToString(sum[:]) != a.config.RootFS.DiffIDs[i] {
			return nil, fmt.Errorf("layer %s: uncompressed content does not match diff_id %s", l.Digest, a.config.RootFS.DiffIDs[i])
		}
		a.layers = append(a.layers, b)
	}
	for name := range files {
		if strings.HasPrefix(name, "blobs/") && !used[name] {
			return nil, fmt.Errorf("archive: %s is not referenced", name)
		}
	}
	return a, nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// unpack applies the archive's layers in order to the directory root.
func (a *ociArchive) unpack(root string) error {
	for i, l := range a.layers {
		raw, err := gunzip(l)
		if err != nil {
			return err
		}
		if err := applyLayer(root, raw); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}
	return nil
}

// applyLayer extracts one uncompressed layer into root, honouring OCI
// whiteouts: ".wh.NAME" deletes NAME from the layers below, and
// ".wh..wh..opq" empties its directory. Whiteouts apply to lower layers
// only, so they are done first, in a pass of their own.
func applyLayer(root string, layer []byte) error {
	for _, whiteouts := range []bool{true, false} {
		tr := tar.NewReader(bytes.NewReader(layer))
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
			if name == ".." || strings.HasPrefix(name, "../") {
				return fmt.Errorf("%s: escapes the root", hdr.Name)
			}
			target := filepath.Join(root, filepath.FromSlash(name))
			if isWhiteout := strings.HasPrefix(path.Base(name), ".wh."); isWhiteout != whiteouts {
				continue
			}
			if whiteouts {
				err = applyWhiteout(target)
			} else {
				err = extract(target, hdr, tr)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", hdr.Name, err)
			}
		}
	}
	return nil
}

func applyWhiteout(target string) error {
	dir, base := filepath.Split(target)
	if base != ".wh..wh..opq" {
		return os.RemoveAll(filepath.Join(dir, strings.TrimPrefix(base, ".wh.")))
	}
	children, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, c := range children {
		if err := os.RemoveAll(filepath.Join(dir, c.Name())); err != nil {
			return err
		}
	}
	return nil
}

// extract creates one directory, file or symbolic link with its mode and
// owner.
func extract(target string, hdr *tar.Header, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
			if err := os.Remove(target); err != nil {
				return err
			}
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
	case tar.TypeReg:
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		return os.Symlink(hdr.Linkname, target)
	default:
		return fmt.Errorf("entry type %q not supported", hdr.Typeflag)
	}
	// Chmod, not the create mode: the umask would drop bits, and the
	// sticky bit of /tmp must survive.
	mode := hdr.FileInfo().Mode() & (fs.ModePerm | fs.ModeSticky | fs.ModeSetuid | fs.ModeSetgid)
	if err := os.Chmod(target, mode); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		return os.Lchown(target, hdr.Uid, hdr.Gid)
	}
	return nil
}

// tree lists the files under root as "path mode [content]" lines, sorted.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", filepath.ToSlash(rel), fi.Mode())
		if fi.Mode().IsRegular() && fi.Size() < 100 {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %q", b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	sort.Strings(lines)
	return lines
}

// testTar builds an uncompressed layer: "name" is a file holding its own
// name, "name/" a directory.
func testTar(t *testing.T, names ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := &tar.Header{Name: n, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(n))}
		if strings.HasSuffix(n, "/") {
			hdr.Mode, hdr.Typeflag, hdr.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The unpacker behind the chroot test must apply layers as engines do.
func TestApplyLayer(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]string
		want   []string
		err    string
	}{
		{
			name:   "later layer replaces a file",
			layers: [][]string{{"a/", "a/x"}, {"a/x"}},
			want:   []string{`a drwxr-xr-x`, `a/x -rw-r--r-- "a/x"`},
		},
		{
			name:   "whiteout deletes a file of a lower layer",
			layers: [][]string{{"a/", "a/x", "a/y"}, {"a/.wh.x"}},
			want:   []string{`a drwxr-xr-x`, `a/y -rw-r--r-- "a/y"`},
		},
		{
			name:   "whiteout deletes a directory",
			layers: [][]string{{"a/", "a/x", "b"}, {".wh.a"}},
			want:   []string{`b -rw-r--r-- "b"`},
		},
		{
			name:   "opaque directory hides the lower layers' entries only",
			layers: [][]string{{"d/", "d/old", "e"}, {"d/", "d/new", "d/.wh..wh..opq"}},
			want:   []string{`d drwxr-xr-x`, `d/new -rw-r--r-- "d/new"`, `e -rw-r--r-- "e"`},
		},
		{
			name:   "entry escaping the root is refused",
			layers: [][]string{{"../evil"}},
			err:    "escapes the root",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			var err error
			for _, l := range tt.layers {
				if err = applyLayer(root, testTar(t, l...)); err != nil {
					break
				}
			}
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tree(t, root); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

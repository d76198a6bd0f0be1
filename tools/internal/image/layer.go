package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	_ "embed" // the base files
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// entry is one file or directory of a layer.
type entry struct {
	name string // relative to the root, no leading or trailing slash
	mode int64  // permission bits (and sticky bit)
	dir  bool
	data []byte
}

// The base's /etc/passwd and /etc/group: root only. The Dockerfile copies
// the same files.
var (
	//go:embed rootfs/etc/passwd
	etcPasswd []byte
	//go:embed rootfs/etc/group
	etcGroup []byte
)

// baseEntries is the minimal root filesystem a static Go daemon needs: root
// in /etc/passwd and /etc/group (user lookups and tools that read them),
// and a world-writable /tmp.
func baseEntries() []entry {
	return []entry{
		{name: "etc", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, data: etcGroup},
		{name: "etc/passwd", mode: 0o644, data: etcPasswd},
		{name: "tmp", mode: 0o1777, dir: true},
	}
}

// layerTar writes entries as a tar stream that depends only on them and on
// mtime: entries sorted by name, owner 0:0 without names, fixed modes, the
// same modification time everywhere and the PAX-free USTAR format.
func layerTar(entries []entry, mtime time.Time) ([]byte, error) {
	sorted := append([]entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, e := range sorted {
		if e.name == "" || strings.HasPrefix(e.name, "/") || path.Clean(e.name) != e.name {
			return nil, fmt.Errorf("layer entry %q: not a clean relative path", e.name)
		}
		if i > 0 && sorted[i-1].name == e.name {
			return nil, fmt.Errorf("layer entry %q: listed twice", e.name)
		}
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			ModTime: mtime,
			Format:  tar.FormatUSTAR,
		}
		if e.dir {
			hdr.Typeflag, hdr.Name = tar.TypeDir, e.name+"/"
		} else {
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write tar header %s: %w", e.name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write tar entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

// gzipBytes compresses b with a header that carries no name and no time, so
// the same input gives the same bytes with the same Go release.
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if _, err := zw.Write(b); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return buf.Bytes(), nil
}

// newLayer builds a gzip-compressed OCI layer from entries.
func newLayer(entries []entry, mtime time.Time) (v1.Layer, error) {
	raw, err := layerTar(entries, mtime)
	if err != nil {
		return nil, err
	}
	compressed, err := gzipBytes(raw)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(compressed)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return layer, nil
}

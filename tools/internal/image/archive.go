package image

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// layoutFile is the oci-layout file of an OCI image layout.
const layoutFile = `{"imageLayoutVersion":"1.0.0"}`

// WriteArchive writes img as an OCI image archive: an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) packed into one tar stream, the
// format of `skopeo copy oci-archive:`, `podman load` and `docker load`.
// The stream depends only on img: entries in a fixed order, owner 0:0, fixed
// modes and every modification time set to the image's creation time.
func WriteArchive(w io.Writer, img *Image) error {
	indexJSON, err := json.Marshal(img.Index)
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	blobs, err := imageBlobs(img.Image)
	if err != nil {
		return err
	}
	digests := make([]string, 0, len(blobs))
	for d := range blobs {
		digests = append(digests, d)
	}
	sort.Strings(digests)

	mtime := img.Created
	tw := tar.NewWriter(w)
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: tar.FormatUSTAR})
	}
	file := func(name string, data []byte) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: mtime, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := file("oci-layout", []byte(layoutFile)); err != nil {
		return fmt.Errorf("write oci-layout: %w", err)
	}
	if err := file("index.json", indexJSON); err != nil {
		return fmt.Errorf("write index.json: %w", err)
	}
	if err := dir("blobs/"); err != nil {
		return fmt.Errorf("write blobs/: %w", err)
	}
	if err := dir("blobs/sha256/"); err != nil {
		return fmt.Errorf("write blobs/sha256/: %w", err)
	}
	for _, d := range digests {
		if err := file("blobs/sha256/"+d, blobs[d]); err != nil {
			return fmt.Errorf("write blob %s: %w", d, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close archive: %w", err)
	}
	return nil
}

// imageBlobs returns the manifest, config and compressed layers of img by
// sha256 hex digest.
func imageBlobs(img v1.Image) (map[string][]byte, error) {
	blobs := map[string][]byte{}
	add := func(h v1.Hash, data []byte) error {
		if h.Algorithm != "sha256" {
			return fmt.Errorf("blob %s: not sha256", h)
		}
		got, _, err := v1.SHA256(bytes.NewReader(data))
		if err != nil {
			return err
		}
		if got != h {
			return fmt.Errorf("blob %s: content hashes to %s", h, got)
		}
		blobs[h.Hex] = data
		return nil
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("manifest digest: %w", err)
	}
	if err := add(digest, manifest); err != nil {
		return nil, err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("config digest: %w", err)
	}
	if err := add(configDigest, config); err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return nil, fmt.Errorf("layer digest: %w", err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", d, err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read layer %s: %w", d, err)
		}
		if err := add(d, data); err != nil {
			return nil, err
		}
	}
	return blobs, nil
}

// Package image builds the tcpclose-trace container image without a
// container engine: a static binary on an empty base with only what a static
// Go daemon needs (root in /etc/passwd and /etc/group, /tmp), packed as an OCI
// image archive. The same inputs always give the same bytes and digest: the
// layers are sorted tar streams with one fixed time and owner, and every
// timestamp comes from Options.Created.
package image

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image runs, and how.
const (
	// Name is the image's repository, fully qualified, in the name
	// annotation: containerd (and so the CRI, after `ctr -n k8s.io images
	// import`) stores an image under the normalized form of its name, and
	// the shipped manifests deploy this one, so that a short name cannot
	// leave the kubelet looking for another.
	Name = "docker.io/library/tcpclose-trace"
	// Title is the image's title label.
	Title = "tcpclose-trace"
	// BinaryPath is where the binary sits in the image.
	BinaryPath = "/tcpclose-trace"
	// User runs the daemon: attaching BPF programs needs root.
	User = "0:0"
	// MetricsPort is the port `serve` listens on by default.
	MetricsPort = "19180/tcp"
	// DefaultSource is the project's source repository (the source label).
	DefaultSource = "https://github.com/tcpclose-trace/tcpclose-trace"
	// Licenses is the SPDX expression of the project's license.
	Licenses = "MIT"
	// Description is the image's description label.
	Description = "Names the process that closed a TCP connection in a way that lost data (eBPF)"
)

// Entrypoint and Cmd are the image's default command line: the daemon.
var (
	Entrypoint = []string{BinaryPath}
	Cmd        = []string{"serve"}
)

// Options are the inputs of an image build. Equal options give identical
// images.
type Options struct {
	// Binary is the static tcpclose-trace executable (linux/amd64 or
	// linux/arm64); its ELF header decides the image's architecture.
	Binary []byte
	// Version is the version label and the tag in the name annotations.
	Version string
	// Revision is the source revision (commit) label; may be empty.
	Revision string
	// Source is the source repository label; empty means DefaultSource.
	Source string
	// Created is the image's creation time and the modification time of
	// every file: take it from SOURCE_DATE_EPOCH or the commit time.
	Created time.Time
}

// Image is a built image and the one-entry index that names it.
type Image struct {
	// Image is the linux image (manifest, config, layers).
	Image v1.Image
	// Index is the archive's index.json: the manifest with its platform and
	// name annotations.
	Index *v1.IndexManifest
	// Digest is the manifest's digest: the image digest that registries and
	// engines show.
	Digest v1.Hash
	// ConfigDigest is the config's digest: the image ID of docker and podman.
	ConfigDigest v1.Hash
	// Arch is the image's architecture (GOARCH name).
	Arch string
	// Created is the creation time, in UTC and whole seconds.
	Created time.Time
}

// Reference is the image's full name for version: Name and the tag.
func Reference(version string) string { return Name + ":" + Tag(version) }

// Build builds the image from opts.
func Build(opts Options) (*Image, error) {
	if opts.Version == "" {
		return nil, fmt.Errorf("image: empty version")
	}
	if opts.Created.IsZero() {
		return nil, fmt.Errorf("image: no creation time")
	}
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	arch, err := CheckStatic(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	created := opts.Created.UTC().Truncate(time.Second)

	base, err := newLayer(baseEntries(), created)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	app, err := newLayer([]entry{{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, data: opts.Binary}}, created)
	if err != nil {
		return nil, fmt.Errorf("binary layer: %w", err)
	}

	cfg := &v1.ConfigFile{
		Architecture: arch,
		OS:           "linux",
		Created:      v1.Time{Time: created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint:   Entrypoint,
			Cmd:          Cmd,
			User:         User,
			WorkingDir:   "/",
			ExposedPorts: map[string]struct{}{MetricsPort: {}},
			Labels:       labels(opts, created),
		},
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: cfg.Created, CreatedBy: "tcpclose-mkimage: /etc/passwd, /etc/group and /tmp", Comment: "base"}},
		mutate.Addendum{Layer: app, History: v1.History{Created: cfg.Created, CreatedBy: "tcpclose-mkimage: " + BinaryPath, Comment: "static binary " + opts.Version}},
	)
	if err != nil {
		return nil, fmt.Errorf("append layers: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("image digest: %w", err)
	}
	configDigest, err := img.ConfigName()
	if err != nil {
		return nil, fmt.Errorf("config digest: %w", err)
	}

	size, err := img.Size()
	if err != nil {
		return nil, fmt.Errorf("manifest size: %w", err)
	}
	tag := Tag(opts.Version)
	idx := &v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1,
			Size:      size,
			Digest:    digest,
			Platform:  &v1.Platform{OS: "linux", Architecture: arch},
			Annotations: map[string]string{
				// The tag, as OCI layouts name their images (skopeo, podman).
				"org.opencontainers.image.ref.name": tag,
				// The whole name, as containerd and docker load read it.
				"io.containerd.image.name": Reference(opts.Version),
			},
		}},
	}
	return &Image{Image: img, Index: idx, Digest: digest, ConfigDigest: configDigest, Arch: arch, Created: created}, nil
}

// labels are the OCI annotations of the image config.
func labels(opts Options, created time.Time) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       Title,
		"org.opencontainers.image.description": Description,
		"org.opencontainers.image.source":      opts.Source,
		"org.opencontainers.image.version":     opts.Version,
		"org.opencontainers.image.licenses":    Licenses,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	if opts.Revision != "" {
		l["org.opencontainers.image.revision"] = opts.Revision
	}
	return l
}

var notTag = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Tag turns a version into a valid image tag: at most 128 characters from
// [A-Za-z0-9_.-], not starting with '.' or '-'.
func Tag(version string) string {
	t := notTag.ReplaceAllString(version, "-")
	t = strings.TrimLeft(t, ".-")
	if len(t) > 128 {
		t = t[:128]
	}
	if t == "" {
		return "latest"
	}
	return t
}

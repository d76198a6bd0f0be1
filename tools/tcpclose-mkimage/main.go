// Command tcpclose-mkimage packs a static tcpclose-trace binary into an OCI
// image archive without a container engine (a development tool: `make image`
// runs it). The same binary, version, revision and time give the same archive
// bytes and the same image digest.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/tools/internal/image"
)

const usage = `Usage: tcpclose-mkimage -binary FILE -o FILE.tar -version V [flags]

Packs a static tcpclose-trace binary into an OCI image archive (an OCI image
layout in a tar), loadable with skopeo, podman and docker 25+, and prints the
image digest. Reproducible: every time in the image comes from
-source-date-epoch (default: $SOURCE_DATE_EPOCH).

Flags:
`

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcpclose-mkimage: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tcpclose-mkimage", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	binary := fs.String("binary", "", "the static tcpclose-trace binary to pack")
	out := fs.String("o", "", "where to write the OCI image archive")
	version := fs.String("version", "", "version: the version label and the tag")
	revision := fs.String("revision", "", "source revision (commit) label")
	source := fs.String("source", image.DefaultSource, "source repository label")
	arch := fs.String("arch", "", "expected architecture (amd64 or arm64); empty accepts the binary's")
	epoch := fs.String("source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "creation time in seconds since 1970 (all timestamps in the image)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *binary == "" || *out == "" || *version == "":
		return errors.New("-binary, -o and -version are required")
	case *epoch == "":
		return errors.New("no creation time: set -source-date-epoch or SOURCE_DATE_EPOCH")
	}
	secs, err := strconv.ParseInt(*epoch, 10, 64)
	if err != nil || secs < 0 {
		return fmt.Errorf("-source-date-epoch %q is not a non-negative integer", *epoch)
	}
	bin, err := os.ReadFile(*binary)
	if err != nil {
		return fmt.Errorf("read binary: %w", err)
	}
	img, err := image.Build(image.Options{
		Binary:   bin,
		Version:  *version,
		Revision: *revision,
		Source:   *source,
		Created:  time.Unix(secs, 0),
	})
	if err != nil {
		return err
	}
	if *arch != "" && *arch != img.Arch {
		return fmt.Errorf("%s is a linux/%s binary, not linux/%s", *binary, img.Arch, *arch)
	}
	var buf bytes.Buffer
	if err := image.WriteArchive(&buf, img); err != nil {
		return err
	}
	if err := writeFile(*out, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s linux/%s, %d bytes\n", *out, image.Reference(*version), img.Arch, buf.Len())
	fmt.Fprintf(stdout, "image digest %s\n", img.Digest)
	fmt.Fprintf(stdout, "image id     %s\n", img.ConfigDigest)
	return nil
}

// writeFile replaces path with data, so a failed build leaves no half archive.
func writeFile(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".mkimage-*")
	if err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write archive: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

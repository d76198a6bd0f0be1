package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bad command lines fail before anything is written. (tools/internal/image runs
// the whole tool through `make image`.)
func TestRunRefuses(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	base := []string{"-binary", notELF, "-o", out, "-version", "v1"}
	tests := []struct {
		name string
		args []string
		env  string // SOURCE_DATE_EPOCH
		err  string
	}{
		{"no arguments", nil, "1", "are required"},
		{"no version", []string{"-binary", notELF, "-o", out}, "1", "are required"},
		{"no time", base, "", "SOURCE_DATE_EPOCH"},
		{"bad time", append(base, "-source-date-epoch", "yesterday"), "", "not a non-negative integer"},
		{"negative time", append(base, "-source-date-epoch", "-5"), "", "not a non-negative integer"},
		{"extra argument", append(base, "extra"), "1", `unexpected argument "extra"`},
		{"missing binary", []string{"-binary", filepath.Join(dir, "none"), "-o", out, "-version", "v1"}, "1", "read binary"},
		{"not a static binary", base, "1", "read elf"},
		{"unknown flag", []string{"-bogus"}, "1", "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tt.env)
			err := run(tt.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want one containing %q", err, tt.err)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s exists after a failed run", out)
			}
		})
	}
	if err := run([]string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

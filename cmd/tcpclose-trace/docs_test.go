package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// helpFlag matches a flag in the flag package's -h output: "  -name type".
var helpFlag = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9.-]*)(?: \w+)?$`)

// helpFlags returns the flags a mode's -h lists.
func helpFlags(t *testing.T, parse func(args []string, out *strings.Builder) error) []string {
	t.Helper()
	var out strings.Builder
	if err := parse([]string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: err = %v, want flag.ErrHelp", err)
	}
	var names []string
	for _, m := range helpFlag.FindAllStringSubmatch(out.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) == 0 {
		t.Fatalf("-h lists no flags:\n%s", out.String())
	}
	return names
}

// documented reports whether docs name the flag as -name or --name (not as
// part of a longer flag name).
func documented(docs, name string) bool {
	re := regexp.MustCompile(`(^|[^A-Za-z0-9.-])--?` + regexp.QuoteMeta(name) + `($|[^A-Za-z0-9.-]|\.($|[^A-Za-z0-9]))`)
	return re.MatchString(docs)
}

// TestFlagsDocumented: every flag of each mode is in the README or in the
// mode's page of docs/.
func TestFlagsDocumented(t *testing.T) {
	modes := []struct {
		name  string
		pages []string
		parse func(args []string, out *strings.Builder) error
	}{
		{"trace", []string{"README.md"}, func(args []string, out *strings.Builder) error {
			_, err := parseFlags(args, out)
			return err
		}},
		{"serve", []string{"README.md", "docs/daemon.md"}, func(args []string, out *strings.Builder) error {
			_, err := parseServeFlags(args, out)
			return err
		}},
		{"selftest", []string{"README.md", "docs/selftest.md"}, func(args []string, out *strings.Builder) error {
			return runSelftest(t.Context(), args, out, out)
		}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			var docs strings.Builder
			for _, p := range m.pages {
				src, err := os.ReadFile(filepath.Join("..", "..", p))
				if err != nil {
					t.Fatal(err)
				}
				docs.Write(src)
			}
			for _, name := range helpFlags(t, m.parse) {
				if !documented(docs.String(), name) {
					t.Errorf("flag --%s is not documented in %s", name, strings.Join(m.pages, " or "))
				}
			}
		})
	}
}

func TestDocumented(t *testing.T) {
	tests := []struct {
		docs, name string
		want       bool
	}{
		{"  --pid N   only", "pid", true},
		{"`-o json`", "o", true},
		{"(`--metrics.by-pod=N`)", "metrics.by-pod", true},
		{"ends with --stacks.", "stacks", true},
		{"--metrics.by-pod N", "metrics.by", false},
		{"--ring-size", "ring", false},
		{"--web.listen-address", "web", false},
		{"pid", "pid", false},
		{"a-pid", "pid", false},
	}
	for _, tt := range tests {
		if got := documented(tt.docs, tt.name); got != tt.want {
			t.Errorf("documented(%q, %q) = %v, want %v", tt.docs, tt.name, got, tt.want)
		}
	}
}

package kubetest

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// flagLine matches a flag in the flag package's -h output: "  -name type".
var flagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9.-]*)(?: (\w+))?$`)

// serveFlags runs `tcpclose-trace serve -h` from the repository's sources
// and returns its flags: name -> type ("" for a boolean).
func serveFlags(t *testing.T) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/tcpclose-trace", "serve", "-h")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	// -h may exit 0 or 2; what counts is that it printed the flags.
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("go run ./cmd/tcpclose-trace serve -h: %v", err)
	}
	flags := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := flagLine.FindStringSubmatch(line); m != nil {
			flags[m[1]] = m[2]
		}
	}
	if flags["web.listen-address"] != "string" || flags["all"] != "" {
		t.Fatalf("cannot read the flags from serve -h (err %v):\n%s", err, out)
	}
	return flags
}

// TestArgsAreDaemonFlags: every rendering passes `serve` and then only
// flags the daemon knows, as --name=value with a value of the flag's type.
func TestArgsAreDaemonFlags(t *testing.T) {
	known := serveFlags(t)
	for _, r := range renderings() {
		t.Run(r.name, func(t *testing.T) {
			args := r.want.args // TestManifests checks the rendered args equal these
			if len(args) == 0 || args[0] != "serve" {
				t.Fatalf("args %q: want serve first", args)
			}
			seen := map[string]bool{}
			for _, a := range args[1:] {
				if err := checkFlag(a, known, seen); err != "" {
					t.Errorf("%q: %s", a, err)
				}
			}
		})
	}
}

// checkFlag checks one argument against the daemon's flags.
func checkFlag(arg string, known map[string]string, seen map[string]bool) string {
	name, value, hasValue := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
	if !strings.HasPrefix(arg, "--") {
		return "want --name=value"
	}
	typ, ok := known[name]
	switch {
	case !ok:
		return "the daemon has no such flag"
	case seen[name]:
		return "given twice"
	}
	seen[name] = true
	switch typ {
	case "":
		if hasValue {
			if _, err := strconv.ParseBool(value); err != nil {
				return "a boolean flag with a non-boolean value"
			}
		}
	case "int":
		if _, err := strconv.Atoi(value); err != nil || !hasValue {
			return "want an integer value"
		}
	default:
		if !hasValue || value == "" {
			return "want --name=value (a separate value argument would be read as an argument)"
		}
	}
	return ""
}

func TestCheckFlag(t *testing.T) {
	known := map[string]string{"all": "", "metrics.by-comm": "int", "log.format": "string"}
	tests := []struct {
		arg     string
		wantErr bool
	}{
		{"--all", false},
		{"--all=false", false},
		{"--all=maybe", true},
		{"--metrics.by-comm=5", false},
		{"--metrics.by-comm=five", true},
		{"--log.format=json", false},
		{"--log.format", true},
		{"--log-format=json", true},
		{"-log.format=json", true},
		{"serve", true},
	}
	for _, tt := range tests {
		if got := checkFlag(tt.arg, known, map[string]bool{}); (got != "") != tt.wantErr {
			t.Errorf("checkFlag(%q) = %q, want error %v", tt.arg, got, tt.wantErr)
		}
	}
	seen := map[string]bool{}
	checkFlag("--all", known, seen)
	if checkFlag("--all", known, seen) == "" {
		t.Error("a flag given twice is accepted")
	}
}

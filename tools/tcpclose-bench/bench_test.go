package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestQuickBench is the benchmark's smoke run: it must measure every
// workload with and without the tracer and write a report. No figure is
// asserted: these machines are shared and noisy.
func TestQuickBench(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: the benchmark loads BPF programs and creates a network namespace: run as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: ip (iproute2) is not installed")
	}
	dir := t.TempDir()
	tracer := filepath.Join(dir, "tcpclose-trace")
	if out, err := exec.Command("go", "build", "-o", tracer, "../../cmd/tcpclose-trace").CombinedOutput(); err != nil {
		t.Fatalf("build tracer: %v\n%s", err, out)
	}
	ringlib := filepath.Join(dir, "tcpclose-trace-ringlib")
	if out, err := exec.Command("go", "build", "-tags", "ringlib", "-o", ringlib, "../../cmd/tcpclose-trace").CombinedOutput(); err != nil {
		t.Fatalf("build tracer with ringlib: %v\n%s", err, out)
	}
	self := filepath.Join(dir, "tcpclose-bench")
	if out, err := exec.Command("go", "build", "-o", self, ".").CombinedOutput(); err != nil {
		t.Fatalf("build bench: %v\n%s", err, out)
	}
	report := filepath.Join(dir, "BENCHMARKS.md")
	cmd := exec.CommandContext(context.Background(), self, "-quick", "-tracer", tracer, "-tracer-ringlib", ringlib, "-o", report)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tcpclose-bench -quick: %v\n%s", err, out)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, want := range []string{"| W1 | none |", "| W2 | tcpclose-trace (trace, NDJSON) |", "| W4 | tcpclose-trace (serve) |",
		"| W6 | tcpclose-trace (trace, NDJSON) |", "| W2 | on_set_state |", "## Event latency",
		"| W1 | empty programs on the same tracepoints |", "## Sustained rate", "## Targets",
		"## Memory with full tables", "| peak RSS with full tables <= 40 MB |",
		"## Written by hand vs the library", "| ring reader + drain clock | W2, 1 runs each |",
		"| W4 | " + ringlibTool + " |", "## CPU time per connection and per call",
		"| W8 | tcpclose-trace (trace, NDJSON) |", "| W8 BPF per send/recv <= 15 ns above the floor |",
		"| W1 BPF per connection <= 1.0 us |", "| W3 trace mode >= 0.90 of none (default budget) |",
		"| at a low rate nothing is suppressed"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// W2 streams one unread_close and one reset_received per connection:
	// 1000 events for 500, none lost or dropped. The tracer watches the
	// whole host, so another process's closes may add a few.
	row := strings.Split(lineOf(text, "| W2 | tcpclose-trace (trace, NDJSON) |"), "|")
	if len(row) < 11 {
		t.Fatalf("W2 trace row: %q", row)
	}
	events, err := strconv.Atoi(strings.TrimSpace(row[5]))
	if err != nil || events < 1000 || events > 1100 {
		t.Errorf("W2 trace row counts %q events, want 1000 (a few more at most)", row[5])
	}
	if lost, dropped := strings.TrimSpace(row[9]), strings.TrimSpace(row[10]); lost != "0" || dropped != "0" {
		t.Errorf("W2 trace row: %s lost, %s dropped, want 0 and 0", lost, dropped)
	}

	// The full-tables runs filled the tables (no "did not fill" note).
	if l := lineOf(text, "| peak RSS with full tables"); strings.Contains(l, "did not fill") {
		t.Errorf("full-tables target: %s", l)
	}
}

func lineOf(text, prefix string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestKeptSection(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"none", "# B\n\n## Targets\nx\n", ""},
		{"last", "# B\n\n## Peers\np\n\n## Soak (10 min)\n| a |\n| b |\n", "\n## Soak (10 min)\n| a |\n| b |\n"},
		{"in the middle", "# B\n## Soak\ns\n\n## Peers\np\n", "\n## Soak\ns\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keptSection(tt.doc, soakHeading); got != tt.want {
				t.Errorf("keptSection = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseGoBench(t *testing.T) {
	out := []byte(`goos: linux
BenchmarkAppendRecord-2   	 4395189	       228.6 ns/op	       0 B/op	       0 allocs/op
BenchmarkAppendRecord-2   	 4395189	       300.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkAppendRecord-2   	 4395189	       200.0 ns/op	       0 B/op	       0 allocs/op
BenchmarkEncodingJSON-2   	  960367	      1157 ns/op	     416 B/op	       4 allocs/op
PASS
`)
	got := parseGoBench(out)
	tests := []struct {
		name   string
		ns     float64
		allocs int64
	}{{"BenchmarkAppendRecord", 228.6, 0}, {"BenchmarkEncodingJSON", 1157, 4}}
	for _, tt := range tests {
		if g, ok := got[tt.name]; !ok || g.ns != tt.ns || g.allocs != tt.allocs {
			t.Errorf("%s: got %+v (%v), want %v ns, %d allocs", tt.name, g, ok, tt.ns, tt.allocs)
		}
	}
	if len(got) != 2 {
		t.Errorf("got %d benchmarks, want 2: %+v", len(got), got)
	}
}

func TestSummarySuppressed(t *testing.T) {
	tests := []struct {
		name, stderr string
		want         int64
	}{
		{"no summary", "error: something\n", -1},
		{"none suppressed", "unread_close  10\nring records lost  0\n", 0},
		{"two kinds", "ring records lost  0\nreset_sent suppressed (over the budget)  41230\nreset_received suppressed (over the budget)  7\n", 41237},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarySuppressed(tt.stderr); got != tt.want {
				t.Errorf("summarySuppressed = %d, want %d", got, tt.want)
			}
		})
	}
}

// Package testmatrix turns `go test -json` (test2json) streams into
// pass/fail/skip per test, and lays several runs side by side: one column
// per kernel, in a table of tests and a table of the self-test's detections.
package testmatrix

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
)

// Status is the outcome of one test in one run.
type Status string

// Outcomes. A test absent from a run is NotRun.
const (
	Pass   Status = "pass"
	Fail   Status = "FAIL"
	Skip   Status = "skip"
	NotRun Status = "-"
)

// Result is one test's outcome, with the first line that says why for a
// failure or a skip.
type Result struct {
	Name    string  `json:"name"`
	Status  Status  `json:"status"`
	Seconds float64 `json:"seconds"`
	Why     string  `json:"why,omitempty"`
}

// Column is one run of the suite: on one kernel, in a VM or on the host.
type Column struct {
	Name    string   `json:"name"`   // e.g. "6.1", "6.12", "host"
	Kernel  string   `json:"kernel"` // the kernel release (uname -r) it ran on
	Results []Result `json:"results"`
	// Error is set when the run did not complete (the VM did not boot, the
	// test binary crashed or timed out); Results hold what was reported.
	Error   string  `json:"error,omitempty"`
	Seconds float64 `json:"seconds"` // wall time of the suite
	// Selftest is the report of `tcpclose-trace selftest -o json`, run
	// after the suite on the same kernel; nil when it did not run or its
	// output did not decode, and SelftestError says why.
	Selftest      *selfreport.Report `json:"selftest,omitempty"`
	SelftestError string             `json:"selftest_error,omitempty"`
}

// Failed reports whether the run is incomplete, any test failed, or the
// self-test that ran did not pass.
func (c *Column) Failed() bool {
	if c.Error != "" || c.SelftestError != "" {
		return true
	}
	if c.Selftest != nil && (c.Selftest.Verdict != selfreport.Pass || c.Selftest.Error != "") {
		return true
	}
	for _, r := range c.Results {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// Counts returns how many tests passed, failed and were skipped.
func (c *Column) Counts() (pass, fail, skip int) {
	for _, r := range c.Results {
		switch r.Status {
		case Pass:
			pass++
		case Fail:
			fail++
		case Skip:
			skip++
		}
	}
	return pass, fail, skip
}

// event is one test2json record.
type event struct {
	Action  string  `json:"Action"`
	Test    string  `json:"Test"`
	Elapsed float64 `json:"Elapsed"`
	Output  string  `json:"Output"`
}

// whyLine matches a test log line, "    file_test.go:12: message".
var whyLine = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: (.*)$`)

// maxWhy bounds the reason kept per test.
const maxWhy = 200

// Parse reads a test2json stream and returns each test's outcome in the
// order the tests started. A test that started but never ended (the binary
// crashed or timed out) is a failure. The second value is the package's own
// outcome: "pass", "fail", or "" if the stream ended before it.
func Parse(r io.Reader) ([]Result, string, error) {
	type state struct {
		res   Result
		ended bool
		first string // the first log line of the test
		panic string // the first panic line, e.g. "panic: test timed out after 1m0s"
	}
	var order []*state
	byName := map[string]*state{}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, "", fmt.Errorf("parse test2json line %q: %w", line, err)
		}
		if ev.Test == "" {
			if ev.Action == "pass" || ev.Action == "fail" {
				pkg = ev.Action
			}
			continue
		}
		st := byName[ev.Test]
		if st == nil {
			st = &state{res: Result{Name: ev.Test}}
			byName[ev.Test] = st
			order = append(order, st)
		}
		switch ev.Action {
		case "output":
			out := strings.TrimRight(ev.Output, "\n")
			if m := whyLine.FindStringSubmatch(out); m != nil && st.first == "" {
				st.first = m[1]
			}
			if strings.HasPrefix(out, "panic: ") && st.panic == "" {
				st.panic = out
			}
		case "pass", "fail", "skip":
			st.res.Status = map[string]Status{"pass": Pass, "fail": Fail, "skip": Skip}[ev.Action]
			st.res.Seconds = ev.Elapsed
			st.ended = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, "", fmt.Errorf("read test2json: %w", err)
	}
	out := make([]Result, 0, len(order))
	for _, st := range order {
		r := st.res
		switch {
		case !st.ended:
			r.Status, r.Why = Fail, "did not finish"
			if st.panic != "" {
				r.Why += ": " + st.panic
			} else if st.first != "" {
				r.Why += ": " + st.first
			}
		case r.Status != Pass:
			r.Why = st.first
		}
		if len(r.Why) > maxWhy {
			r.Why = r.Why[:maxWhy] + "..."
		}
		out = append(out, r)
	}
	return out, pkg, nil
}

// Render writes a Markdown table: one row per test (in the order of the
// first column that ran it), one column per run, then a totals row and the
// reasons for every failure and skip.
func Render(w io.Writer, cols []Column) error {
	cells := make([]map[string]Result, len(cols))
	lists := make([][]string, len(cols))
	for i, c := range cols {
		cells[i] = map[string]Result{}
		for _, r := range c.Results {
			cells[i][r.Name] = r
			lists[i] = append(lists[i], r.Name)
		}
	}
	names := mergeOrder(lists)
	b := &strings.Builder{}
	b.WriteString("| test |")
	for _, c := range cols {
		fmt.Fprintf(b, " %s |", header(c))
	}
	b.WriteString("\n| --- |")
	for range cols {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, n := range names {
		fmt.Fprintf(b, "| %s |", n)
		for i := range cols {
			st := NotRun
			if r, ok := cells[i][n]; ok {
				st = r.Status
			}
			fmt.Fprintf(b, " %s |", st)
		}
		b.WriteString("\n")
	}
	b.WriteString("| **total** (pass/fail/skip) |")
	for _, c := range cols {
		p, f, s := c.Counts()
		fmt.Fprintf(b, " %d/%d/%d |", p, f, s)
	}
	b.WriteString("\n")

	var notes []string
	for i, c := range cols {
		if c.Error != "" {
			notes = append(notes, fmt.Sprintf("- **%s**: run incomplete: %s", c.Name, c.Error))
		}
		for _, n := range names {
			r, ok := cells[i][n]
			if !ok || r.Status == Pass || r.Why == "" {
				continue
			}
			notes = append(notes, fmt.Sprintf("- **%s** %s `%s`: %s", c.Name, r.Status, n, r.Why))
		}
	}
	return writeTable(w, b, notes)
}

// writeTable writes a table and the notes below it, one list item each.
func writeTable(w io.Writer, table *strings.Builder, notes []string) error {
	if len(notes) > 0 {
		table.WriteString("\n")
		table.WriteString(strings.Join(notes, "\n"))
		table.WriteString("\n")
	}
	_, err := io.WriteString(w, table.String())
	return err
}

// mergeOrder lists every name of the lists once, in the order of the first
// list that has it: a name only a later list has goes right after the name
// that preceded it there.
func mergeOrder(lists [][]string) []string {
	var names []string
	seen := map[string]bool{}
	for _, list := range lists {
		at := 0 // where the next new name goes
		for _, n := range list {
			if seen[n] {
				at = slices.Index(names, n) + 1
				continue
			}
			seen[n] = true
			names = slices.Insert(names, at, n)
			at++
		}
	}
	return names
}

func header(c Column) string {
	if c.Kernel == "" || c.Kernel == c.Name {
		return c.Name
	}
	return fmt.Sprintf("%s (%s)", c.Name, c.Kernel)
}

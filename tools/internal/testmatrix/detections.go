package testmatrix

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
)

// HasSelftest reports whether any column carries a self-test result or the
// reason it has none: only then is there a detection table to render.
func HasSelftest(cols []Column) bool {
	for i := range cols {
		if cols[i].Selftest != nil || cols[i].SelftestError != "" {
			return true
		}
	}
	return false
}

// RenderDetections writes a Markdown table of the self-test's detections:
// one row per detection (in the self-test's order), one column per run.
// A cell is ok, FAIL or n/a for both families, or each status other than ok
// with the families that have it where they differ; "-" where the run has
// no self-test. A "hooks" row first counts what the tracer attached, and
// the last rows give the self-test's verdict and the suite's totals. Below
// the table, per run: the hooks and reset reasons, what the kernel cannot
// show (lost), and why each cell that is not ok is so.
func RenderDetections(w io.Writer, cols []Column) error {
	lists := make([][]string, len(cols))
	rows := make([]map[string]*selfreport.Row, len(cols))
	for i := range cols {
		rows[i] = map[string]*selfreport.Row{}
		if st := cols[i].Selftest; st != nil {
			for j := range st.Rows {
				r := &st.Rows[j]
				rows[i][r.Detection] = r
				lists[i] = append(lists[i], r.Detection)
			}
		}
	}
	names := mergeOrder(lists)

	b := &strings.Builder{}
	line := func(first string, cell func(i int, c *Column) string) {
		fmt.Fprintf(b, "| %s |", first)
		for i := range cols {
			fmt.Fprintf(b, " %s |", cell(i, &cols[i]))
		}
		b.WriteString("\n")
	}
	line("detection", func(_ int, c *Column) string { return header(*c) })
	line("---", func(int, *Column) string { return "---" })
	line("hooks", func(_ int, c *Column) string {
		if c.Selftest == nil {
			return string(NotRun)
		}
		return selfreport.HookSummary(c.Selftest.Hooks)
	})
	for _, n := range names {
		line(n, func(i int, _ *Column) string {
			if r := rows[i][n]; r != nil {
				return r.Combined()
			}
			return string(NotRun)
		})
	}
	line("**selftest**", func(_ int, c *Column) string {
		switch {
		case c.Selftest == nil:
			return string(NotRun)
		case c.Selftest.Error != "":
			return c.Selftest.Verdict + " (incomplete)"
		}
		return c.Selftest.Verdict
	})
	line("**e2e** (pass/fail/skip)", func(_ int, c *Column) string {
		p, f, s := c.Counts()
		if c.Error != "" {
			return fmt.Sprintf("%d/%d/%d (incomplete)", p, f, s)
		}
		return fmt.Sprintf("%d/%d/%d", p, f, s)
	})

	var notes []string
	for i := range cols {
		notes = append(notes, detectionNotes(&cols[i], names, rows[i])...)
	}
	return writeTable(w, b, notes)
}

// detectionNotes explains one run's column: hooks and reset reasons, what
// is lost, and each cell that is not ok, grouped by status and reason.
func detectionNotes(c *Column, names []string, rows map[string]*selfreport.Row) []string {
	st := c.Selftest
	if st == nil {
		if c.SelftestError != "" {
			return []string{fmt.Sprintf("- **%s**: no selftest result: %s", c.Name, c.SelftestError)}
		}
		return nil
	}
	notes := []string{fmt.Sprintf("- **%s** hooks: %s; %s", c.Name, selfreport.HookList(st.Hooks), st.ResetSupport())}
	for _, l := range st.Lost {
		notes = append(notes, fmt.Sprintf("- **%s** lost: %s", c.Name, l))
	}
	if st.Error != "" {
		notes = append(notes, fmt.Sprintf("- **%s**: selftest incomplete: %s", c.Name, st.Error))
	}
	for _, n := range names {
		r := rows[n]
		if r == nil {
			continue
		}
		// Cells of the row that share a status and a reason, in family order;
		// the families are named unless the group is the whole row.
		type group struct {
			status, why string
			families    []string
		}
		var groups []*group
		for _, cell := range r.Cells {
			if cell.Status == selfreport.OK {
				continue
			}
			i := slices.IndexFunc(groups, func(g *group) bool { return g.status == cell.Status && g.why == cell.Why })
			if i < 0 {
				groups = append(groups, &group{status: cell.Status, why: cell.Why})
				i = len(groups) - 1
			}
			groups[i].families = append(groups[i].families, cell.Family)
		}
		for _, g := range groups {
			where := ""
			if len(g.families) < len(r.Cells) {
				where = " (" + strings.Join(g.families, ", ") + ")"
			}
			notes = append(notes, fmt.Sprintf("- **%s** %s `%s`%s: %s", c.Name, g.status, n, where, g.why))
		}
	}
	return notes
}

// AddSelftest records in the column what `tcpclose-trace selftest -o json`
// printed and its exit status (-1: it never ended). The report must decode
// strictly and agree with the status (0 exactly when it passed and
// completed); otherwise SelftestError says what is wrong.
func (c *Column) AddSelftest(output string, exit int) {
	c.Selftest, c.SelftestError = nil, ""
	rep, err := selfreport.Decode(strings.NewReader(output))
	switch {
	case output == "" && exit == -1:
		c.SelftestError = "selftest did not run"
		return
	case err != nil && exit == -1:
		c.SelftestError = fmt.Sprintf("selftest did not end: %v", err)
		return
	case err != nil:
		c.SelftestError = fmt.Sprintf("selftest exit status %d: %v", exit, err)
		return
	}
	c.Selftest = rep
	if passed := rep.Verdict == selfreport.Pass && rep.Error == ""; passed != (exit == 0) {
		c.SelftestError = fmt.Sprintf("selftest exit status %d with verdict %s", exit, rep.Verdict)
	}
}

// Markdown writes the whole matrix: the table of tests and, when any run
// has a self-test result, the table of detections, each under a heading.
func Markdown(w io.Writer, cols []Column) error {
	if _, err := io.WriteString(w, "### End-to-end tests per kernel\n\n"); err != nil {
		return err
	}
	if err := Render(w, cols); err != nil {
		return err
	}
	if !HasSelftest(cols) {
		return nil
	}
	if _, err := io.WriteString(w, "\n### Detections per kernel (tcpclose-trace selftest)\n\n"); err != nil {
		return err
	}
	return RenderDetections(w, cols)
}

// Save writes the column to dir/NAME.json, where ReadColumn reads it back.
func (c *Column) Save(dir string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result %s: %w", c.Name, err)
	}
	return os.WriteFile(filepath.Join(dir, c.Name+".json"), append(b, '\n'), 0o644)
}

// ReadColumn reads a column Save wrote.
func ReadColumn(path string) (*Column, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Column
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

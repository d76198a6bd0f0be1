package selftest

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
)

// Write prints the report: the kernel line (hooks used, reset reasons), one
// row per detection, one column per family, then what the kernel cannot
// show and why each failed or unavailable cell is so, then a verdict line.
func (r *Report) Write(w io.Writer) error {
	if r.Kernel != nil {
		fmt.Fprintf(w, "kernel: %s\n\n", r.Kernel)
	}
	if err := r.writeTable(w); err != nil {
		return err
	}
	notes, tally := r.notes()
	var lost []string
	if r.Kernel != nil {
		lost = r.Kernel.Lost
	}
	if len(notes) > 0 || len(lost) > 0 {
		fmt.Fprintln(w)
	}
	for _, l := range lost {
		fmt.Fprintf(w, "lost: %s\n", l)
	}
	for _, n := range notes {
		where := strings.Join(n.cells, ", ")
		if len(n.cells) == tally.cells {
			where = "every detection"
		} else if len(n.cells) == tally.cells-tally.notAvailable && n.status == Failed {
			where = "every other detection"
		}
		fmt.Fprintf(w, "%s %s: %s\n", n.status, where, n.why)
	}
	fmt.Fprintln(w)
	if tally.failedRows == 0 {
		_, err := fmt.Fprintln(w, "PASS: every detection this kernel supports works")
		return err
	}
	_, err := fmt.Fprintf(w, "FAIL: %d of %d checks do not work on this kernel\n", tally.failedRows, len(Rows()))
	return err
}

// writeTable writes the table of detections by family.
func (r *Report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "DETECTION")
	for _, f := range r.Families {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(f))
	}
	fmt.Fprintln(tw)
	for _, row := range Rows() {
		fmt.Fprint(tw, row)
		for _, f := range r.Families {
			fmt.Fprintf(tw, "\t%s", r.Cells[row][f].Status)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// note is why some cells are not ok: one reason, the cells it explains.
type note struct {
	status Status
	why    string
	cells  []string // row/family
}

// tally counts the report's cells.
type tally struct {
	cells, notAvailable int
	failedRows          int // rows with a failed cell
}

// notes returns why each cell is not ok, grouped by reason, in row order.
func (r *Report) notes() ([]*note, tally) {
	var notes []*note
	var t tally
	byWhy := map[string]*note{}
	for _, row := range Rows() {
		rowFailed := false
		for _, f := range r.Families {
			t.cells++
			c := r.Cells[row][f]
			rowFailed = rowFailed || c.Status == Failed
			if c.Status == NotAvailable {
				t.notAvailable++
			}
			if c.Status == OK {
				continue
			}
			key := string(c.Status) + "\x00" + c.Why
			n := byWhy[key]
			if n == nil {
				n = &note{status: c.Status, why: c.Why}
				byWhy[key] = n
				notes = append(notes, n)
			}
			n.cells = append(n.cells, row+"/"+f)
		}
		if rowFailed {
			t.failedRows++
		}
	}
	return notes, t
}

// Document is the report as `selftest -o json` writes it; runErr is the
// error Run returned, if any.
func (r *Report) Document(runErr error) *selfreport.Report {
	d := &selfreport.Report{Namespace: r.Namespace, Families: r.Families, Verdict: selfreport.Pass,
		Hooks: []string{}, Lost: []string{}}
	if k := r.Kernel; k != nil {
		d.Kernel = k.Release
		d.Hooks = append(d.Hooks, k.Hooks...)
		d.Lost = append(d.Lost, k.Lost...)
		d.ResetReasons, d.ActiveResetReasons = k.Resets.ResetReasons, k.Resets.ActiveResetReasons
	}
	if d.Kernel == "" {
		d.Kernel = Release()
	}
	for _, row := range Rows() {
		dr := selfreport.Row{Detection: row}
		for _, f := range r.Families {
			c := r.Cells[row][f]
			dr.Cells = append(dr.Cells, selfreport.Cell{Family: f, Status: string(c.Status), Why: c.Why})
			if c.Status == Failed {
				d.Verdict = selfreport.Fail
			}
		}
		d.Rows = append(d.Rows, dr)
	}
	if runErr != nil {
		d.Error = runErr.Error()
	}
	return d
}

// Package selfreport is the machine-readable result of `tcpclose-trace
// selftest -o json`: the document, a strict decoder for those who read it
// (the kernel matrix), and the short names both sides show.
package selfreport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Cell statuses, as the table prints them.
const (
	OK           = "ok"
	Failed       = "FAIL"
	NotAvailable = "n/a"
)

// Verdicts of a whole run.
const (
	Pass = "pass"
	Fail = "fail"
)

// Report is one self-test run. Field order is the order of the JSON object.
type Report struct {
	// Kernel is the release it ran on (uname -r).
	Kernel string `json:"kernel"`
	// Hooks are what the tracer attached on this kernel, each "tracepoint
	// NAME", "function NAME" (fentry) or "kprobe NAME" (where the kernel
	// refused the function's trampoline); planned from BTF when it did not
	// load.
	Hooks []string `json:"hooks"`
	// ResetReasons: the kernel names the resets it sends (6.10+);
	// ActiveResetReasons: also those it decides on its own (6.12+).
	ResetReasons       bool `json:"reset_reasons"`
	ActiveResetReasons bool `json:"active_reset_reasons"`
	// Lost says what this kernel cannot show and why, one line each.
	Lost []string `json:"lost"`
	// Namespace is the private network namespace it ran in (removed since).
	Namespace string `json:"namespace,omitempty"`
	// Families tested, in column order: "ipv4", "ipv6".
	Families []string `json:"families"`
	// Rows are the detections, in the table's order.
	Rows []Row `json:"rows"`
	// Verdict is Pass when no cell failed, else Fail.
	Verdict string `json:"verdict"`
	// Error is set when the run did not complete (interrupted) or could not
	// clean up; the rows hold what was checked.
	Error string `json:"error,omitempty"`
}

// Row is one detection.
type Row struct {
	Detection string `json:"detection"`
	Cells     []Cell `json:"cells"` // one per family, in Report.Families order
}

// Cell is one detection for one family.
type Cell struct {
	Family string `json:"family"`
	Status string `json:"status"` // OK, Failed or NotAvailable
	Why    string `json:"why,omitempty"`
}

// Write writes the report as one JSON object on one line.
func (r *Report) Write(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode selftest report: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Decode reads exactly one report: unknown fields, trailing data, unknown
// statuses, rows that miss a family and a verdict that disagrees with the
// cells are errors.
func Decode(r io.Reader) (*Report, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var rep Report
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("decode selftest report: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode selftest report: data after the object")
	}
	if err := rep.validate(); err != nil {
		return nil, fmt.Errorf("selftest report: %w", err)
	}
	return &rep, nil
}

func (r *Report) validate() error {
	if r.Kernel == "" {
		return errors.New("no kernel")
	}
	if len(r.Families) == 0 || len(r.Rows) == 0 {
		return errors.New("no families or no rows")
	}
	failed := false
	for _, row := range r.Rows {
		if len(row.Cells) != len(r.Families) {
			return fmt.Errorf("row %q: %d cells for %d families", row.Detection, len(row.Cells), len(r.Families))
		}
		for i, c := range row.Cells {
			if c.Family != r.Families[i] {
				return fmt.Errorf("row %q: cell %d is %q, want %q", row.Detection, i, c.Family, r.Families[i])
			}
			switch c.Status {
			case Failed:
				failed = true
			case OK, NotAvailable:
			default:
				return fmt.Errorf("row %q, %s: unknown status %q", row.Detection, c.Family, c.Status)
			}
		}
	}
	switch {
	case r.Verdict != Pass && r.Verdict != Fail:
		return fmt.Errorf("unknown verdict %q", r.Verdict)
	case failed != (r.Verdict == Fail):
		return fmt.Errorf("verdict %s disagrees with the cells", r.Verdict)
	}
	return nil
}

// Status is the status of one detection for one family, "" if absent.
func (r *Report) Status(detection, family string) string {
	for _, row := range r.Rows {
		if row.Detection != detection {
			continue
		}
		for _, c := range row.Cells {
			if c.Family == family {
				return c.Status
			}
		}
	}
	return ""
}

// Combined is a row's families in one word: the status they share, or
// where they differ, each status other than ok with its families, e.g.
// "FAIL (ipv6)" when IPv4 works and IPv6 does not.
func (row *Row) Combined() string {
	if len(row.Cells) == 0 {
		return ""
	}
	same := true
	for _, c := range row.Cells[1:] {
		same = same && c.Status == row.Cells[0].Status
	}
	if same {
		return row.Cells[0].Status
	}
	var parts []string
	for _, st := range []string{Failed, NotAvailable} {
		if fams := row.Families(st); len(fams) > 0 {
			parts = append(parts, fmt.Sprintf("%s (%s)", st, strings.Join(fams, ", ")))
		}
	}
	return strings.Join(parts, ", ")
}

// Hook kinds, the first word of a hook.
const (
	Tracepoint = "tracepoint"
	Function   = "function"
	Kprobe     = "kprobe"
)

// hookNames groups hook names by kind, tracepoints first.
func hookNames(hooks []string) (tracepoints, functions, kprobes, other []string) {
	for _, h := range hooks {
		kind, name, _ := strings.Cut(h, " ")
		switch kind {
		case Tracepoint:
			tracepoints = append(tracepoints, name)
		case Function:
			functions = append(functions, name)
		case Kprobe:
			kprobes = append(kprobes, name)
		default:
			other = append(other, h)
		}
	}
	return tracepoints, functions, kprobes, other
}

// HookSummary counts the hooks by kind: "6 tracepoints", "4 tracepoints
// + 4 fentry", "4 tracepoints + 4 kprobes"; "none" for none.
func HookSummary(hooks []string) string {
	tps, fns, kps, other := hookNames(hooks)
	var parts []string
	if len(tps) > 0 {
		parts = append(parts, plural(len(tps), "tracepoint"))
	}
	if len(fns) > 0 {
		parts = append(parts, fmt.Sprintf("%d fentry", len(fns)))
	}
	if len(kps) > 0 {
		parts = append(parts, plural(len(kps), "kprobe"))
	}
	if len(other) > 0 {
		parts = append(parts, fmt.Sprintf("%d other", len(other)))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " + ")
}

// HookList names the hooks by kind: "tracepoints a, b; fentry c, d;
// kprobes e, f".
func HookList(hooks []string) string {
	tps, fns, kps, other := hookNames(hooks)
	var parts []string
	if len(tps) > 0 {
		parts = append(parts, "tracepoints "+strings.Join(tps, ", "))
	}
	if len(fns) > 0 {
		parts = append(parts, "fentry "+strings.Join(fns, ", "))
	}
	if len(kps) > 0 {
		parts = append(parts, "kprobes "+strings.Join(kps, ", "))
	}
	if len(other) > 0 {
		parts = append(parts, strings.Join(other, ", "))
	}
	if len(parts) == 0 {
		return "no hooks"
	}
	return strings.Join(parts, "; ")
}

// ResetSupport says in words which reset reasons the kernel names.
func (r *Report) ResetSupport() string {
	return ResetSupport(r.ResetReasons, r.ActiveResetReasons)
}

// ResetSupport says in words which reset reasons a kernel names.
func ResetSupport(reasons, active bool) string {
	switch {
	case !reasons:
		return "no reset reasons (enum sk_rst_reason: 6.10+)"
	case !active:
		return "reset reasons, active ones NOT_SPECIFIED (6.10, 6.11)"
	}
	return "reset reasons"
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Families lists the families of a row's cells with the given status.
func (row *Row) Families(status string) []string {
	var fams []string
	for _, c := range row.Cells {
		if c.Status == status && !slices.Contains(fams, c.Family) {
			fams = append(fams, c.Family)
		}
	}
	return fams
}

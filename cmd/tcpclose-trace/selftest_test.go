package main

import (
	"context"
	"errors"
	"github.com/tcpclose-trace/tcpclose-trace/internal/expect"
	"strings"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/internal/selftest"
)

// TestSelftestFailedDetection: a report with a failed detection is printed
// whole, in either format, and the command fails with errSelftestFailed
// (exit status 1); a passing report makes it succeed. The checks
// themselves run for real in the e2e suite (TestSelftestBrokenDetection).
func TestSelftestFailedDetection(t *testing.T) {
	report := func(status selftest.Status) *selftest.Report {
		r := &selftest.Report{Namespace: "tct-0123", Families: []string{"ipv4"}, Cells: map[string]map[string]*selftest.Cell{}}
		for _, row := range selftest.Rows() {
			r.Cells[row] = map[string]*selftest.Cell{"ipv4": {Status: selftest.OK}}
		}
		r.Cells[expect.RowUnread]["ipv4"] = &selftest.Cell{Status: status, Why: "no unread_close event"}
		return r
	}
	defer func(run func(context.Context, selftest.Options) (*selftest.Report, error), check func() error) {
		runChecks, checkPrivileges = run, check
	}(runChecks, checkPrivileges)
	checkPrivileges = func() error { return nil }
	for _, tt := range []struct {
		name    string
		status  selftest.Status
		format  string
		wantErr error
		want    []string
	}{
		{"table, failed", selftest.Failed, "table", errSelftestFailed,
			[]string{"in network namespace tct-0123", "FAIL: 1 of", "FAIL " + expect.RowUnread + "/ipv4: no unread_close event"}},
		{"json, failed", selftest.Failed, "json", errSelftestFailed, []string{`"verdict":"fail"`}},
		{"table, passed", selftest.OK, "table", nil, []string{"PASS: every detection"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var gotOpts selftest.Options
			runChecks = func(_ context.Context, opts selftest.Options) (*selftest.Report, error) {
				gotOpts = opts
				return report(tt.status), nil
			}
			var out, errOut strings.Builder
			err := runSelftest(context.Background(), []string{"--family", "ipv4", "-o", tt.format}, &out, &errOut)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("runSelftest: %v, want %v", err, tt.wantErr)
			}
			if len(gotOpts.Families) != 1 || gotOpts.Families[0] != "ipv4" || gotOpts.Drop != 0 {
				t.Errorf("options: %+v", gotOpts)
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.ReplaceAll(out.String(), " ", ""), strings.ReplaceAll(w, " ", "")) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

package testmatrix

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
)

var update = flag.Bool("update", false, "rewrite testdata/matrix.md from the fixtures")

// readFixtures reads the saved results in testdata/results: 6.1 (fentry,
// a refused trampoline and a made-up IPv6 failure), 6.12 and the host (all
// ok; the host's report is a real run's), and 6.6 (the run timed out, no
// self-test result).
func readFixtures(t *testing.T) []Column {
	t.Helper()
	var cols []Column
	for _, name := range []string{"6.1", "6.12", "host", "6.6"} {
		c, err := ReadColumn(filepath.Join("testdata", "results", name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		cols = append(cols, *c)
	}
	return cols
}

// TestMarkdown renders both tables from saved results, as the matrix
// subcommand does, and compares them with testdata/matrix.md.
func TestMarkdown(t *testing.T) {
	cols := readFixtures(t)
	var b strings.Builder
	if err := Markdown(&b, cols); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "matrix.md")
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want) {
		t.Errorf("got:\n%s\nwant (%s):\n%s", b.String(), golden, want)
	}
	// The detection table itself, cell by cell.
	for _, want := range []string{
		"| detection | 6.1 (6.1.0-56-cloud-amd64) | 6.12 (6.12.117+deb12-cloud-amd64) | host (6.18.44-fc-v669) | 6.6 (6.6.15-cloud-amd64) |\n",
		"| hooks | 4 tracepoints + 3 fentry | 6 tracepoints | 6 tracepoints | - |\n",
		"| unread_close | ok | ok | ok | - |\n",
		"| reset_sent (no socket) | FAIL (ipv6) | ok | ok | - |\n",
		"| reset reasons | n/a | ok | ok | - |\n",
		"| **selftest** | fail | pass | pass | - |\n",
		"| **e2e** (pass/fail/skip) | 1/1/1 | 3/0/0 | 2/0/0 | 0/1/0 (incomplete) |\n",
		"- **6.1** hooks: tracepoints inet_sock_set_state, tcp_receive_reset, tcp_send_reset, tcp_destroy_sock; " +
			"fentry tcp_sendmsg, tcp_recvmsg, tcp_v4_send_reset; no reset reasons (enum sk_rst_reason: 6.10+)\n",
		"- **6.1** lost: attach to function tcp_v6_send_reset: no trampolines: IPv6 resets sent by TIME_WAIT sockets or for segments with no socket go unseen\n",
		"- **6.1** FAIL `reset_sent (no socket)` (ipv6): closed_port: no reset_sent event (reason unknown)\n",
		"- **6.1** n/a `reset reasons`: the kernel has no enum sk_rst_reason (added in 6.10): resets show reason unknown\n",
		"- **6.6**: no selftest result: selftest did not end: decode selftest report: EOF\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("matrix lacks %q", want)
		}
	}
}

// TestSaveRead checks that a saved column, self-test included, reads back
// the same.
func TestSaveRead(t *testing.T) {
	dir := t.TempDir()
	for _, c := range readFixtures(t) {
		if err := c.Save(dir); err != nil {
			t.Fatal(err)
		}
		back, err := ReadColumn(filepath.Join(dir, c.Name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*back, c) {
			t.Errorf("%s: read back %+v, want %+v", c.Name, *back, c)
		}
	}
}

func TestMarkdownWithoutSelftest(t *testing.T) {
	cols := []Column{{Name: "6.12", Results: []Result{{Name: "TestA", Status: Pass}}}}
	var b strings.Builder
	if err := Markdown(&b, cols); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "Detections") || !strings.Contains(b.String(), "| TestA | pass |") {
		t.Errorf("results saved before the self-test existed:\n%s", b.String())
	}
}

func TestAddSelftest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "selftest-host.json"))
	if err != nil {
		t.Fatal(err)
	}
	pass := string(raw)
	fail := strings.Replace(strings.Replace(pass, `"status":"ok"`, `"status":"FAIL","why":"no event"`, 1),
		`"verdict":"pass"`, `"verdict":"fail"`, 1)
	interrupted := strings.Replace(fail, `"verdict":"fail"`, `"verdict":"fail","error":"interrupted: context canceled"`, 1)
	tests := []struct {
		name        string
		output      string
		exit        int
		wantVerdict string // "" for no report
		wantErr     string
		wantFailed  bool
	}{
		{name: "pass", output: pass, exit: 0, wantVerdict: selfreport.Pass},
		{name: "fail", output: fail, exit: 1, wantVerdict: selfreport.Fail, wantFailed: true},
		{name: "interrupted", output: interrupted, exit: 1, wantVerdict: selfreport.Fail, wantFailed: true},
		{name: "pass with status 1", output: pass, exit: 1, wantVerdict: selfreport.Pass, wantErr: "selftest exit status 1 with verdict pass", wantFailed: true},
		{name: "fail with status 0", output: fail, exit: 0, wantVerdict: selfreport.Fail, wantErr: "selftest exit status 0 with verdict fail", wantFailed: true},
		{name: "table instead of JSON", output: "tcpclose-trace selftest on Linux 6.1.0\n", exit: 0,
			wantErr: "selftest exit status 0: decode selftest report: invalid character", wantFailed: true},
		{name: "never ended", output: pass[:100], exit: -1, wantErr: "selftest did not end: decode selftest report: unexpected EOF", wantFailed: true},
		{name: "never ran", output: "", exit: -1, wantErr: "selftest did not run", wantFailed: true},
		{name: "no output", output: "", exit: 2, wantErr: "selftest exit status 2: decode selftest report: EOF", wantFailed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Column{Name: "host", Results: []Result{{Name: "TestA", Status: Pass}}}
			c.AddSelftest(tt.output, tt.exit)
			switch {
			case tt.wantVerdict == "" && c.Selftest != nil:
				t.Errorf("report %+v, want none", c.Selftest)
			case tt.wantVerdict != "" && (c.Selftest == nil || c.Selftest.Verdict != tt.wantVerdict):
				t.Errorf("report %+v, want verdict %s", c.Selftest, tt.wantVerdict)
			}
			if !strings.HasPrefix(c.SelftestError, tt.wantErr) || (tt.wantErr == "") != (c.SelftestError == "") {
				t.Errorf("selftest error %q, want %q", c.SelftestError, tt.wantErr)
			}
			if c.Failed() != tt.wantFailed {
				t.Errorf("Failed() = %v, want %v", c.Failed(), tt.wantFailed)
			}
		})
	}
}

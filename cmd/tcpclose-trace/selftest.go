package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/tcpclose-trace/tcpclose-trace/internal/selftest"
)

const selftestUsage = `Usage: tcpclose-trace selftest [flags]

Checks that every detection works on this kernel: in a private network
namespace it runs each close pattern on loopback (IPv4 and IPv6), checks
that the right event arrives with the right process and byte counts and that
the events agree with the namespace's kernel counters, and prints which
detections work (and why not, where not). Exit status 0 only when everything
this kernel can support works. Needs root and iproute2 (ip, nstat).

-o json prints one JSON object instead of the table: the kernel release, the
hooks the tracer uses ("tracepoint NAME", "function NAME"), reset_reasons and
active_reset_reasons, lost (what the kernel cannot show), families, rows
(each detection with its cells: family, status ok, FAIL or n/a, and why),
verdict (pass or fail) and error (set if the run was interrupted).

Flags:
`

// runChecks runs the self-test's checks. The command's tests replace it, to
// see how a failed detection is reported; the e2e suite breaks a detection
// for real in-process (selftest.Options.Drop).
var runChecks = selftest.Run

// checkPrivileges fails unless the self-test may run; replaced with runChecks.
var checkPrivileges = selftest.CheckPrivileges

// errSelftestFailed is returned when a detection does not work; the report
// has said which.
var errSelftestFailed = errors.New("selftest failed: some detections do not work on this kernel")

func runSelftest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tcpclose-trace selftest")
	family := fs.String("family", "both", "address families to test: ipv4, ipv6 or both")
	format := fs.String("o", "table", "output: table, or json (one object)")
	if err := parse(fs, args, selftestUsage, stderr); err != nil {
		return err
	}
	if *format != "table" && *format != "json" {
		return usageError{fmt.Errorf("-o must be table or json, not %q", *format)}
	}
	var opts selftest.Options
	switch *family {
	case "both":
	case "ipv4", "ipv6":
		opts.Families = []string{*family}
	default:
		return usageError{fmt.Errorf("--family must be ipv4, ipv6 or both, not %q", *family)}
	}
	if err := checkPrivileges(); err != nil {
		return err // one line instead of a report of failures
	}
	// The namespace must go whatever ends the run: SIGINT, SIGTERM and
	// SIGHUP (a closed terminal) end ctx (main).
	opts.Progress = func(msg string) { fmt.Fprintf(stderr, "selftest: %s\n", msg) }
	if *format == "table" {
		fmt.Fprintf(stdout, "tcpclose-trace selftest on Linux %s\n", selftest.Release())
	}
	rep, err := runChecks(ctx, opts)
	var werr error
	if *format == "json" {
		werr = rep.Document(err).Write(stdout)
	} else {
		if rep.Namespace != "" {
			fmt.Fprintf(stdout, "(in network namespace %s, now removed)\n", rep.Namespace)
		}
		fmt.Fprintln(stdout)
		werr = rep.Write(stdout)
	}
	if werr != nil {
		return errors.Join(err, fmt.Errorf("write report: %w", werr))
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return errSelftestFailed
	}
	return nil
}

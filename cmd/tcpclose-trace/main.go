// Command tcpclose-trace shows which process closed a TCP connection in a
// way that loses data, live, with the fix.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

const usage = `Usage: tcpclose-trace [flags]
       tcpclose-trace serve [flags]   (daemon: Prometheus metrics and JSON logs; serve -h)
       tcpclose-trace selftest        (checks every detection on this kernel; selftest -h)

Traces TCP closes and resets that lose data (close with unread bytes, data
refused after a close before the peer's EOF, zero-linger aborts, resets) and
names the process that caused them; --all or --kinds shows the other kinds
too. Needs root (or CAP_BPF+CAP_PERFMON) and a kernel with BTF.

Flags:
`

const serveUsage = `Usage: tcpclose-trace serve [flags]

Runs as a daemon: serves Prometheus metrics read from the kernel's exact
counters, logs each event that lost data (WARN) or reset a connection (INFO)
as one JSON line on stdout (--kinds, --all: other kinds), and answers /healthz
and /readyz (ready once every program is attached). Stops on SIGTERM,
SIGINT or SIGHUP.

Flags:
`

func main() {
	// The self-test's scenario helpers are this executable re-run.
	scenario.MaybeRunHelper()
	// SIGHUP (the terminal closed, or a service manager's reload) stops the
	// run as SIGTERM does: summary, log line and clean detach.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	if len(os.Args) < 2 || os.Args[1] != "selftest" { // the self-test must remove its namespace
		context.AfterFunc(ctx, func() { time.AfterFunc(stopLimit, stopNow) })
	}
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		var ue usageError
		fmt.Fprintf(os.Stderr, "tcpclose-trace: %s\n", oneLine(err.Error()))
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// stopLimit bounds how long the trace and serve modes take to stop once a
// signal has come: past it (a write that cannot be cut short, to a file or a
// terminal that does not take it), stopNow ends the process. Its programs
// and maps go with it: nothing is pinned.
const stopLimit = 2700 * time.Millisecond

// stopNow says why on stderr, if stderr takes it within 100 ms, and exits
// with status 1.
func stopNow() {
	said := make(chan struct{})
	go func() {
		fmt.Fprintf(os.Stderr, "tcpclose-trace: still stopping %v after the signal (output blocked): exiting now\n", stopLimit)
		close(said)
	}()
	select {
	case <-said:
	case <-time.After(100 * time.Millisecond):
	}
	os.Exit(1)
}

// usageError marks errors in the command line (exit status 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "selftest" {
		return runSelftest(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "serve" {
		cfg, err := parseServeFlags(args[1:], stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, stderr)
	}
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	return trace(ctx, cfg, stdout, stderr)
}

// oneLine joins a multi-line error message (e.g. a YAML error list) into one line.
func oneLine(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, " ")
}

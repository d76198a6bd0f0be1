package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// outputGrace is how long, once a signal has come, the output may take to
// accept what is still to be written before it is abandoned.
const outputGrace = time.Second

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// trace runs the live tracer until ctx ends or the duration passes, then
// prints a summary with the kernel's counters for the run.
func trace(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	if cfg.version {
		fmt.Fprintln(stdout, "tcpclose-trace", version)
		return nil
	}
	pods, podWarnings, err := cfg.pods.resolver()
	if err != nil {
		return err
	}
	defer pods.Close()
	enrich := enricher(pods)
	c, err := collector.Open(cfg.opts)
	if err != nil {
		return err
	}
	defer c.Close()
	enrich, closeStacks := withStacks(enrich, c, cfg.opts.Stacks)
	defer closeStacks()
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte("ready\n"), 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	for _, lost := range c.Lost() { // once running: an error stays one line
		fmt.Fprintln(stderr, "warning:", lost)
	}
	for _, w := range podWarnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	// On a signal the output gets outputGrace to take what is left; then
	// it is abandoned (what was not written is counted), so that the run
	// stops in bounded time even when nobody reads stdout.
	out := output.NewOut(stdout)
	defer context.AfterFunc(ctx, func() { out.Abandon(outputGrace) })()
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}

	var sink output.Sink
	var summaryOut io.Writer = out
	if cfg.output == "json" {
		sink = output.NewJSON(out)
		summaryOut = stderr
	} else {
		t := output.NewTable(out)
		t.NoHints = cfg.noHints
		sink = t
		fmt.Fprintf(stderr, "Tracing TCP closes and resets (owners of %d open TCP sockets learned)... Ctrl-C to stop.\n", c.OldSockets())
	}
	counted := output.NewCounted(sink)
	// Every event is counted in the summary; the selection decides which
	// are shown.
	shown := output.NewSelected(counted, cfg.show)
	summary := output.NewSummary()
	// What the budget suppressed is told in the output's flow: in the
	// table, as lines of their own; beside NDJSON, on stderr.
	storms := newStormWatch(c, time.Now())
	notify := func(force bool) {
		for _, line := range storms.poll(time.Now(), force) {
			if table, ok := sink.(*output.Table); ok {
				_ = table.Notice(line)
			} else {
				fmt.Fprintln(stderr, "tcpclose-trace:", line)
			}
		}
	}
	err = c.RunBatches(ctx, func(ev *collector.Event) {
		enrich(ev)
		summary.Add(ev)
		_ = shown.Write(ev)
	}, func() {
		notify(false)
		_ = shown.Flush()
	})
	notify(true)
	_ = shown.Flush()
	summary.Storm = storms.top(output.StormTop)
	if err != nil {
		return err
	}
	counters, err := c.Counters()
	if err != nil {
		return err
	}
	// What the output missed: the lines it did not take (one per event,
	// in NDJSON; the table's hint lines count too), and the events refused
	// after.
	summary.Unwritten = out.LinesLost() + counted.Refused()
	summary.NotShown = shown.Hidden()
	var buf bytes.Buffer
	if err := summary.Write(&buf, counters, c.Stats(), c.Reasons()); err != nil {
		return err
	}
	// The summary goes where the events went, or, if they could not go
	// there, to stderr.
	writeErr := counted.Err()
	var sumErr error
	if writeErr == nil || summaryOut == stderr {
		_, sumErr = summaryOut.Write(buf.Bytes())
	}
	if summaryOut != stderr && (writeErr != nil || sumErr != nil) {
		_, sumErr = stderr.Write(buf.Bytes())
	}
	if sumErr != nil {
		return errors.Join(writeErr, fmt.Errorf("write summary: %w", sumErr))
	}
	if errors.Is(writeErr, output.ErrAbandoned) {
		return nil // stopped by a signal with nobody reading: counted in the summary
	}
	return writeErr
}

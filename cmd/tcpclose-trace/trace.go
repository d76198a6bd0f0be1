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
	c, enrich, closeCollector, err := openCollector(cfg.opts, pods)
	if err != nil {
		return err
	}
	defer closeCollector()
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte("ready\n"), 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	for _, n := range c.Kprobes() {
		fmt.Fprintln(stderr, "note:", n)
	}
	for _, w := range append(c.Lost(), podWarnings...) { // once running: an error stays one line
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
	r := newTraceRun(cfg, c, out, stderr)
	if err := r.stream(ctx, c, enrich); err != nil {
		return err
	}
	return r.finish(c)
}

// traceRun is one run of the live tracer: where its events and summary go.
type traceRun struct {
	out     *output.Out
	stderr  io.Writer
	sink    output.Sink     // the table or NDJSON
	counted *output.Counted // sink, stopped at its first error
	shown   *output.Selected
	summary *output.Summary
	// summaryOut is where the summary goes: the table's output, or
	// stderr beside NDJSON.
	summaryOut io.Writer
}

func newTraceRun(cfg *config, c *collector.Collector, out *output.Out, stderr io.Writer) *traceRun {
	r := &traceRun{out: out, stderr: stderr, summaryOut: out, summary: output.NewSummary()}
	if cfg.output == "json" {
		r.sink = output.NewJSON(out)
		r.summaryOut = stderr
	} else {
		t := output.NewTable(out)
		t.NoHints = cfg.noHints
		r.sink = t
		fmt.Fprintf(stderr, "Tracing TCP closes and resets (owners of %d open TCP sockets learned)... Ctrl-C to stop.\n", c.OldSockets())
	}
	r.counted = output.NewCounted(r.sink)
	// Every event is counted in the summary; the selection decides which
	// are shown.
	r.shown = output.NewSelected(r.counted, cfg.show)
	return r
}

// stream runs the collector until ctx ends, showing the events. What the
// budget suppressed is told in the output's flow: in the table, as lines
// of their own; beside NDJSON, on stderr.
func (r *traceRun) stream(ctx context.Context, c *collector.Collector, enrich func(*collector.Event)) error {
	storms := newStormWatch(c, time.Now())
	notify := func(force bool) {
		for _, line := range storms.poll(time.Now(), force) {
			if table, ok := r.sink.(*output.Table); ok {
				_ = table.Notice(line)
			} else {
				fmt.Fprintln(r.stderr, "tcpclose-trace:", line)
			}
		}
	}
	err := c.RunBatches(ctx, func(ev *collector.Event) {
		enrich(ev)
		r.summary.Add(ev)
		_ = r.shown.Write(ev)
	}, func() {
		notify(false)
		_ = r.shown.Flush()
	})
	notify(true)
	_ = r.shown.Flush()
	r.summary.Storm = storms.top(output.StormTop)
	return err
}

// finish writes the summary with the kernel's counters where the events
// went, or, if they could not go there, to stderr.
func (r *traceRun) finish(c *collector.Collector) error {
	counters, err := c.Counters()
	if err != nil {
		return err
	}
	// What the output missed: the lines it did not take (one per event,
	// in NDJSON; the table's hint lines count too), and the events refused
	// after.
	r.summary.Unwritten = r.out.LinesLost() + r.counted.Refused()
	r.summary.NotShown = r.shown.Hidden()
	var buf bytes.Buffer
	if err := r.summary.Write(&buf, counters, c.Stats(), c.Reasons()); err != nil {
		return err
	}
	writeErr := r.counted.Err()
	var sumErr error
	if writeErr == nil || r.summaryOut == r.stderr {
		_, sumErr = r.summaryOut.Write(buf.Bytes())
	}
	if r.summaryOut != r.stderr && (writeErr != nil || sumErr != nil) {
		_, sumErr = r.stderr.Write(buf.Bytes())
	}
	if sumErr != nil {
		return errors.Join(writeErr, fmt.Errorf("write summary: %w", sumErr))
	}
	if errors.Is(writeErr, output.ErrAbandoned) {
		return nil // stopped by a signal with nobody reading: counted in the summary
	}
	return writeErr
}

package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// trace runs the live tracer until ctx ends or the duration passes, then
// prints a summary with the kernel's counters for the run.
func trace(ctx context.Context, cfg *config, stdout, stderr io.Writer) error {
	if cfg.version {
		fmt.Fprintln(stdout, "tcpclose-trace", version)
		return nil
	}
	pods, err := cfg.pods.resolver()
	if err != nil {
		return err
	}
	enrich := enricher(pods)
	c, err := collector.Open(cfg.opts)
	if err != nil {
		return err
	}
	defer c.Close()
	if cfg.readyFile != "" {
		if err := os.WriteFile(cfg.readyFile, []byte("ready\n"), 0o644); err != nil {
			return fmt.Errorf("write ready file: %w", err)
		}
	}
	for _, lost := range c.Lost() { // once running: an error stays one line
		fmt.Fprintln(stderr, "warning:", lost)
	}
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}

	var sink output.Sink
	summaryOut := stdout
	if cfg.output == "json" {
		sink = output.NewJSON(stdout)
		summaryOut = stderr
	} else {
		t := output.NewTable(stdout)
		t.NoHints = cfg.noHints
		sink = t
		fmt.Fprintln(stderr, "Tracing TCP closes and resets... Ctrl-C to stop.")
	}
	summary := output.NewSummary()
	var writeErr error
	err = c.RunBatches(ctx, func(ev *collector.Event) {
		enrich(ev)
		summary.Add(ev)
		if writeErr == nil {
			writeErr = sink.Write(ev)
		}
	}, func() {
		if writeErr == nil {
			writeErr = sink.Flush()
		}
	})
	if writeErr == nil {
		writeErr = sink.Flush()
	}
	if err != nil {
		return err
	}
	if writeErr != nil {
		return fmt.Errorf("write output: %w", writeErr)
	}
	counters, err := c.Counters()
	if err != nil {
		return err
	}
	return summary.Write(summaryOut, counters, c.Stats(), c.Reasons())
}

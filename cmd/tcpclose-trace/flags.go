package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// config is the parsed command line.
type config struct {
	output    string
	opts      collector.Options
	duration  time.Duration
	readyFile string
	noHints   bool
	version   bool
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("tcpclose-trace", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, as one line, by main
	fs.Usage = func() {}
	var pid, port, netns uint64Flag
	fs.StringVar(&cfg.output, "o", "table", "output format: table or json (NDJSON, one object per event)")
	fs.Var(&pid, "pid", "only sockets of this process (thread-group id)")
	fs.StringVar(&cfg.opts.Comm, "comm", "", "only sockets of tasks with this command name (exact, at most 15 bytes)")
	fs.Var(&port, "port", "only connections with this TCP port at either end")
	fs.Var(&netns, "netns", "only this network namespace (inode number, as in /proc/PID/ns/net)")
	fs.BoolVar(&cfg.opts.All, "all", false, "also show graceful closes")
	fs.DurationVar(&cfg.duration, "duration", 0, "stop after this long (e.g. 30s); 0 runs until Ctrl-C")
	fs.BoolVar(&cfg.noHints, "no-hints", false, "table output: do not print fix hints")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "create this file once every program is attached")
	fs.BoolVar(&cfg.opts.Debug, "debug", false, "show the whole BPF verifier log when a program is rejected")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if cfg.output != "table" && cfg.output != "json" {
		return nil, usageError{fmt.Errorf("-o must be table or json, not %q", cfg.output)}
	}
	if cfg.duration < 0 {
		return nil, usageError{fmt.Errorf("--duration must not be negative")}
	}
	if pid.v > 1<<22 {
		return nil, usageError{fmt.Errorf("--pid %d is out of range", pid.v)}
	}
	if port.v > 65535 {
		return nil, usageError{fmt.Errorf("--port %d is out of range (1-65535)", port.v)}
	}
	if netns.v > 1<<32-1 {
		return nil, usageError{fmt.Errorf("--netns %d is out of range", netns.v)}
	}
	if len(cfg.opts.Comm) > 15 {
		return nil, usageError{fmt.Errorf("--comm %q is longer than 15 bytes: the kernel keeps only 15", cfg.opts.Comm)}
	}
	cfg.opts.PID, cfg.opts.Port, cfg.opts.Netns = uint32(pid.v), uint16(port.v), uint32(netns.v)
	return cfg, nil
}

// uint64Flag is a non-negative integer flag with a clear parse error.
type uint64Flag struct{ v uint64 }

func (f *uint64Flag) String() string { return strconv.FormatUint(f.v, 10) }

func (f *uint64Flag) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return fmt.Errorf("want a positive integer, got %q", s)
	}
	f.v = v
	return nil
}

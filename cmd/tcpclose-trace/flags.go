package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// config is the parsed command line of the trace mode.
type config struct {
	output    string
	opts      collector.Options
	show      output.Selection
	pods      podFlags
	duration  time.Duration
	readyFile string
	noHints   bool
	version   bool
}

// serveConfig is the parsed command line of the daemon mode.
type serveConfig struct {
	opts          collector.Options
	show          output.Selection // the kinds logged
	pods          podFlags
	listenAddress string
	webConfigFile string
	metricsPath   string
	logFormat     string
	logLevel      slog.Level
	byComm        int
	byPod         int
	maxConns      int
	idleTimeout   time.Duration
}

// defaultListenAddress is outside the 9100-9999 range that Prometheus
// exporters commonly claim.
const defaultListenAddress = ":19180"

// The metrics server's bounds: a Prometheus or two and the kubelet's probes
// need a few connections; idle ones cost about 17 KB each.
const (
	defaultMaxConns    = 64
	defaultIdleTimeout = time.Minute
)

// collectorFlags are the flags both modes share: what to trace and how.
type collectorFlags struct {
	pid, port, netns uint64Flag
	ringSize         sizeFlag
	all              bool
	kinds            kindsFlag
	budget           int
	opts             collector.Options
}

// defaultBudget is how many events of each kind are streamed per second by
// default: what a person can read, and what keeps an event storm (a port
// scan, an RST storm) from costing the node much; every event is counted.
const defaultBudget = 1000

// maxBudget bounds --budget: beyond it, 0 (no budget) says what is meant.
const maxBudget = 10_000_000

func (f *collectorFlags) define(fs *flag.FlagSet) {
	fs.Var(&f.pid, "pid", "only sockets of this process (thread-group id)")
	fs.StringVar(&f.opts.Comm, "comm", "", fmt.Sprintf("only sockets of processes with this name (exact, at most %d bytes)", collector.MaxComm))
	fs.Var(&f.port, "port", "only connections with this TCP port at either end")
	fs.Var(&f.netns, "netns", "only this network namespace (inode number, as in /proc/PID/ns/net)")
	fs.BoolVar(&f.all, "all", false, "show every event kind, undrained and graceful closes too")
	fs.Var(&f.kinds, "kinds", "show only these event kinds, comma-separated: "+output.AllKinds().String()+
		" (default: "+output.DefaultSelection().String()+", and an undrained_close when data_after_close follows it)")
	fs.IntVar(&f.budget, "budget", defaultBudget, "stream at most this many events of each kind per second; the rest are counted "+
		"as suppressed, with their sources (0: no budget)")
	fs.BoolVar(&f.opts.Stacks, "stacks", false, "capture and symbolize the user call stack of each close that loses data or skips the drain")
	fs.Var(&f.ringSize, "ring-size", "ring buffer size, a power of two: e.g. 4M (default), 16M, 256K")
	fs.BoolVar(&f.opts.Debug, "debug", false, "show the whole BPF verifier log when a program is rejected")
}

// options validates the flags and returns the collector options and the
// kinds to show. Graceful closes are streamed only when they are shown.
func (f *collectorFlags) options() (collector.Options, output.Selection, error) {
	o := f.opts
	show := output.DefaultSelection()
	switch {
	case f.all && f.kinds.set:
		return o, show, errors.New("--all and --kinds exclude each other: --all shows every kind")
	case f.all:
		show = output.AllKinds()
	case f.kinds.set:
		show = f.kinds.sel
	}
	o.All = show.Has(collector.KindGracefulClose)
	switch {
	case f.pid.v > 1<<22:
		return o, show, fmt.Errorf("--pid %d is out of range", f.pid.v)
	case f.port.v > 65535:
		return o, show, fmt.Errorf("--port %d is out of range (1-65535)", f.port.v)
	case f.netns.v > 1<<32-1:
		return o, show, fmt.Errorf("--netns %d is out of range", f.netns.v)
	case f.budget < 0 || f.budget > maxBudget:
		return o, show, fmt.Errorf("--budget %d is out of range (0-%d; 0: no budget)", f.budget, maxBudget)
	}
	o.PID, o.Port, o.Netns, o.RingBytes = uint32(f.pid.v), uint16(f.port.v), uint32(f.netns.v), int(f.ringSize.v)
	o.Budget = f.budget
	if err := o.Validate(); err != nil {
		return o, show, err
	}
	return o, show, nil
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs := newFlagSet("tcpclose-trace")
	var cf collectorFlags
	fs.StringVar(&cfg.output, "o", "table", "output format: table or json (NDJSON, one object per event)")
	cf.define(fs)
	cfg.pods.define(fs)
	fs.DurationVar(&cfg.duration, "duration", 0, "stop after this long (e.g. 30s); 0 runs until Ctrl-C")
	fs.BoolVar(&cfg.noHints, "no-hints", false, "table output: do not print fix hints")
	fs.StringVar(&cfg.readyFile, "ready-file", "", "create this file once every program is attached")
	fs.BoolVar(&cfg.version, "version", false, "print the version and exit")
	if err := parse(fs, args, usage, stderr); err != nil {
		return nil, err
	}
	if cfg.output != "table" && cfg.output != "json" {
		return nil, usageError{fmt.Errorf("-o must be table or json, not %q", cfg.output)}
	}
	if cfg.duration < 0 {
		return nil, usageError{fmt.Errorf("--duration must not be negative")}
	}
	if err := cfg.pods.validate(); err != nil {
		return nil, usageError{err}
	}
	var err error
	if cfg.opts, cfg.show, err = cf.options(); err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

func parseServeFlags(args []string, stderr io.Writer) (*serveConfig, error) {
	cfg := &serveConfig{}
	fs := newFlagSet("tcpclose-trace serve")
	var cf collectorFlags
	cf.define(fs)
	cfg.pods.define(fs)
	fs.StringVar(&cfg.listenAddress, "web.listen-address", defaultListenAddress, "address to serve metrics, health and readiness on")
	fs.StringVar(&cfg.webConfigFile, "web.config.file", "", "exporter-toolkit web configuration file (TLS, basic auth)")
	fs.StringVar(&cfg.metricsPath, "web.telemetry-path", "/metrics", "path of the metrics")
	fs.StringVar(&cfg.logFormat, "log.format", "json", "log format: json or logfmt")
	level := fs.String("log.level", "info", "log level: debug, info, warn or error (data loss logs at warn, resets and the other kinds at info)")
	fs.IntVar(&cfg.byComm, "metrics.by-comm", 0, "also export anomalies by command name for at most this many names (0: off)")
	fs.IntVar(&cfg.byPod, "metrics.by-pod", 0, "also export anomalies by pod and container for at most this many containers (0: off)")
	fs.IntVar(&cfg.maxConns, "web.max-connections", defaultMaxConns, "serve at most this many connections at once; more wait to be accepted")
	fs.DurationVar(&cfg.idleTimeout, "web.idle-timeout", defaultIdleTimeout, "close a keep-alive connection idle this long")
	if err := parse(fs, args, serveUsage, stderr); err != nil {
		return nil, err
	}
	if cfg.logFormat != "json" && cfg.logFormat != "logfmt" {
		return nil, usageError{fmt.Errorf("--log.format must be json or logfmt, not %q", cfg.logFormat)}
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, usageError{fmt.Errorf("--log.level must be debug, info, warn or error, not %q", *level)}
	}
	if cfg.byComm < 0 || cfg.byComm > 1000 {
		return nil, usageError{fmt.Errorf("--metrics.by-comm %d is out of range (0-1000)", cfg.byComm)}
	}
	if cfg.byPod < 0 || cfg.byPod > 10000 {
		return nil, usageError{fmt.Errorf("--metrics.by-pod %d is out of range (0-10000)", cfg.byPod)}
	}
	if cfg.maxConns < 1 || cfg.maxConns > 10000 {
		return nil, usageError{fmt.Errorf("--web.max-connections %d is out of range (1-10000)", cfg.maxConns)}
	}
	if cfg.idleTimeout < time.Second || cfg.idleTimeout > time.Hour {
		return nil, usageError{fmt.Errorf("--web.idle-timeout %v is out of range (1s-1h)", cfg.idleTimeout)}
	}
	if err := cfg.pods.validate(); err != nil {
		return nil, usageError{err}
	}
	if !strings.HasPrefix(cfg.metricsPath, "/") || cfg.metricsPath == "/" {
		return nil, usageError{fmt.Errorf("--web.telemetry-path %q must start with / and not be /", cfg.metricsPath)}
	}
	if cfg.listenAddress == "" {
		return nil, usageError{errors.New("--web.listen-address must not be empty")}
	}
	var err error
	if cfg.opts, cfg.show, err = cf.options(); err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, as one line, by main
	fs.Usage = func() {}
	return fs
}

// parse parses args; on -h it prints the usage text and the flags.
func parse(fs *flag.FlagSet, args []string, usageText string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usageText)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}

// kindsFlag is a comma-separated list of event kinds (--kinds).
type kindsFlag struct {
	sel output.Selection
	set bool
}

func (f *kindsFlag) String() string {
	if !f.set {
		return ""
	}
	return f.sel.String()
}

func (f *kindsFlag) Set(s string) error {
	sel, err := output.ParseKinds(s)
	if err != nil {
		return err
	}
	f.sel, f.set = sel, true
	return nil
}

// uint64Flag is a positive integer flag with a clear parse error.
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

// sizeFlag is a byte size: a number with an optional K, M or G suffix
// (powers of 1024; "Ki", "KB" and "KiB" too), at most 1T.
type sizeFlag struct{ v uint64 }

// maxSize bounds sizeFlag: a ring larger than 1G is refused later anyway,
// and the bound keeps the shift from overflowing.
const maxSize = 1 << 40

// sizeUnits are the accepted suffixes (upper case), longest first, with
// their shifts.
var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"KIB", 10}, {"MIB", 20}, {"GIB", 30},
	{"KB", 10}, {"MB", 20}, {"GB", 30},
	{"KI", 10}, {"MI", 20}, {"GI", 30},
	{"K", 10}, {"M", 20}, {"G", 30},
	{"B", 0},
}

func (f *sizeFlag) String() string { return strconv.FormatUint(f.v, 10) }

func (f *sizeFlag) Set(s string) error {
	num, shift := strings.ToUpper(s), uint(0)
	for _, u := range sizeUnits { // one suffix at most: "4MK" stays junk
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = rest, u.shift
			break
		}
	}
	v, err := strconv.ParseUint(num, 10, 64)
	if err != nil || v == 0 {
		return fmt.Errorf("want a size such as 4M or 262144, got %q", s)
	}
	if v > maxSize>>shift {
		return fmt.Errorf("size %q is too large", s)
	}
	f.v = v << shift
	return nil
}

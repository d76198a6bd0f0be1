package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/net/netutil"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/exporter"
	"github.com/tcpclose-trace/tcpclose-trace/kubepods"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// Server timeouts: a request's headers must arrive within readHeaderTimeout
// and the whole request within readTimeout; its answer must be written
// within writeTimeout. The idle timeout is a flag.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 15 * time.Second
	writeTimeout      = 30 * time.Second
)

// shutdownGrace bounds how long in-flight scrapes may delay the exit (after
// outputGrace at most, within the stopLimit).
const shutdownGrace = time.Second

// serve runs the daemon: it checks the web configuration and binds the
// listener before loading anything, serves metrics, health and readiness,
// attaches the programs, logs anomalies until ctx ends, and then detaches.
func serve(ctx context.Context, cfg *serveConfig, stdout, stderr io.Writer) error {
	// On a signal stdout gets outputGrace to take what is left; then it is
	// abandoned, and the last line goes to stderr.
	stdoutOut := output.NewOut(stdout)
	defer context.AfterFunc(ctx, func() { stdoutOut.Abandon(outputGrace) })()
	out := output.NewLogWriter(stdoutOut)
	logger := newLogger(out, cfg)
	if err := web.Validate(cfg.webConfigFile); err != nil {
		return fmt.Errorf("web config %s: %w", cfg.webConfigFile, err)
	}
	pods, podWarnings, err := cfg.pods.resolver()
	if err != nil {
		return err
	}
	defer pods.Close()
	m, err := newMetrics(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var ready atomic.Bool
	addr, stopWeb, err := startWeb(cfg, m.reg, &ready, logger, cancel)
	if err != nil {
		return err
	}
	defer stopWeb()

	c, enrich, closeCollector, err := openCollector(cfg.opts, pods)
	if err != nil {
		return err
	}
	defer closeCollector()
	m.exp.SetSource(c)
	defer m.exp.SetSource(nil) // before c.Close: no scrape reads closed maps
	ready.Store(true)
	logReady(logger, c, pods, podWarnings, addr)
	counted, err := logEvents(ctx, cfg, c, logger, out, func(ev *collector.Event) {
		enrich(ev)
		m.observe(ev)
	})
	ready.Store(false)
	if err == nil {
		err = context.Cause(ctx)
		if errors.Is(err, context.Canceled) {
			err = nil // a signal: the normal way to stop
		}
	}
	stopping := []any{"events_dropped", c.Stats().SinkDropped, "events_unwritten", stdoutOut.LinesLost() + counted.Refused()}
	logger.Info("stopping", stopping...)
	if stdoutOut.Err() != nil { // stdout is closed or was not read: the line goes to stderr
		newLogger(stderr, cfg).Info("stopping", stopping...)
	}
	return err
}

// metrics are the daemon's: the collector's counters and the anomalies by
// owner that the flags ask for.
type metrics struct {
	exp     *exporter.Exporter
	byOwner []*exporter.ByOwner
	reg     *prometheus.Registry
}

func newMetrics(cfg *serveConfig) (*metrics, error) {
	m := &metrics{exp: exporter.New(version)}
	all := []prometheus.Collector{m.exp}
	if cfg.byComm > 0 {
		m.byOwner = append(m.byOwner, exporter.NewByComm(cfg.byComm))
	}
	if cfg.byPod > 0 {
		m.byOwner = append(m.byOwner, exporter.NewByPod(cfg.byPod))
	}
	for _, b := range m.byOwner {
		all = append(all, b)
	}
	var err error
	m.reg, err = exporter.NewRegistry(all...)
	return m, err
}

// observe counts ev by owner.
func (m *metrics) observe(ev *collector.Event) {
	for _, b := range m.byOwner {
		b.Observe(ev)
	}
}

// startWeb binds the listener and serves the metrics, health and readiness
// on it; a failure to serve cancels the run. stop shuts the server down,
// giving the scrapes in flight shutdownGrace.
func startWeb(cfg *serveConfig, reg *prometheus.Registry, ready *atomic.Bool, logger *slog.Logger,
	cancel context.CancelCauseFunc) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", cfg.listenAddress)
	if err != nil {
		return "", nil, fmt.Errorf("--web.listen-address: %w", err)
	}
	// At most maxConns connections at once: more wait in the kernel's
	// accept queue until one closes. The cap is on TCP connections, under
	// any TLS (exporter-toolkit wraps this listener).
	limited := netutil.LimitListener(ln, cfg.maxConns)
	handler, err := newHandler(cfg, reg, ready, logger)
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: cfg.idleTimeout,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}
	webFlags := &web.FlagConfig{WebListenAddresses: &[]string{cfg.listenAddress},
		WebSystemdSocket: new(false), WebConfigFile: &cfg.webConfigFile}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := web.Serve(limited, srv, webFlags, logger); !errors.Is(err, http.ErrServerClosed) {
			cancel(fmt.Errorf("serve http: %w", err))
		}
	}()
	return ln.Addr().String(), func() {
		sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer scancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close() // a scrape still running: cut it
		}
		<-served
		ln.Close()
	}, nil
}

// logReady logs what this kernel cannot show, the pods' warnings, and that
// the daemon is ready.
func logReady(logger *slog.Logger, c *collector.Collector, pods *kubepods.Resolver, podWarnings []string, addr string) {
	podRoot := "off"
	if pods != nil {
		podRoot = pods.Root()
	}
	for _, n := range c.Kprobes() {
		logger.Info("a kprobe stands in for a trampoline", "what", n)
	}
	for _, lost := range c.Lost() {
		logger.Warn("this kernel limits detection", "what", lost)
	}
	for _, w := range podWarnings {
		logger.Warn(w)
	}
	logger.Info("programs attached; ready", "programs", c.Attached(), "listen_address", addr,
		"pods_cgroup_root", podRoot, "open_sockets_owned", c.OldSockets())
}

// logEvents runs the collector until ctx ends: every event is observed,
// the selection decides which are logged (and the log level, which of
// those are written), and what the budget suppressed is logged once a
// second, after the events. It returns the sink, which counts what it
// could not write.
func logEvents(ctx context.Context, cfg *serveConfig, c *collector.Collector, logger *slog.Logger,
	out *output.LogWriter, observe func(*collector.Event)) (*output.Counted, error) {
	var sink output.Sink = output.NewLog(logger)
	if cfg.logFormat != "logfmt" {
		sink = output.NewJSONLog(logger, out) // the same lines, without slog's per-record cost
	}
	counted := output.NewCounted(sink)
	logged := output.NewSelected(counted, cfg.show)
	storms := newStormWatch(c, time.Now())
	logStorms := func(force bool) { // force: now
		for _, line := range storms.poll(time.Now(), force) {
			logger.Warn("events suppressed", "what", line)
		}
	}
	err := c.RunBatches(ctx, func(ev *collector.Event) {
		observe(ev)
		_ = logged.Write(ev)
	}, func() {
		_ = logged.Flush()
		logStorms(false)
	})
	_ = logged.Flush()
	logStorms(true)
	return counted, err
}

func newLogger(w io.Writer, cfg *serveConfig) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.logLevel}
	if cfg.logFormat == "logfmt" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// newHandler routes the landing page, the metrics, /healthz and /readyz.
func newHandler(cfg *serveConfig, reg *prometheus.Registry, ready *atomic.Bool, logger *slog.Logger) (http.Handler, error) {
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "tcpclose-trace",
		Description: "Which process closed a TCP connection in a way that loses data",
		Version:     version,
		Profiling:   "false",
		Links: []web.LandingLinks{
			{Address: cfg.metricsPath, Text: "Metrics"},
			{Address: "/healthz", Text: "Health", Description: "200 while the daemon runs"},
			{Address: "/readyz", Text: "Readiness", Description: "200 once every BPF program is attached"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", landing)
	mux.Handle(cfg.metricsPath, promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError),
		Registry: reg,
	})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready: BPF programs not attached", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux, nil
}

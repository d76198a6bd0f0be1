package main

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tcpclose-trace/tcpclose-trace/output"
)

func TestParseServeFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; "" means success
		check   func(*testing.T, *serveConfig)
	}{
		{name: "defaults", check: func(t *testing.T, c *serveConfig) {
			if c.listenAddress != ":19180" || c.metricsPath != "/metrics" || c.logFormat != "json" ||
				c.logLevel != slog.LevelInfo || c.byComm != 0 || c.webConfigFile != "" || c.opts.RingBytes != 0 ||
				c.show != output.DefaultSelection() || c.opts.All {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{name: "log every kind", args: []string{"--all"}, check: func(t *testing.T, c *serveConfig) {
			if c.show != output.AllKinds() || !c.opts.All {
				t.Errorf("--all: log %v, stream graceful %v", c.show, c.opts.All)
			}
		}},
		{name: "log some kinds", args: []string{"--kinds", "undrained_close, data_after_close"}, check: func(t *testing.T, c *serveConfig) {
			if c.show.String() != "undrained_close,data_after_close" || c.opts.All {
				t.Errorf("--kinds: log %v, stream graceful %v", c.show, c.opts.All)
			}
		}},
		{name: "bad kind", args: []string{"--kinds", "resets"}, wantErr: `unknown event kind "resets"`},
		{name: "everything set", args: []string{"--web.listen-address", "127.0.0.1:9999", "--web.config.file", "web.yml",
			"--web.telemetry-path", "/m", "--log.format", "logfmt", "--log.level", "debug", "--metrics.by-comm", "20",
			"--netns", "4026531840", "--ring-size", "16M"}, check: func(t *testing.T, c *serveConfig) {
			if c.listenAddress != "127.0.0.1:9999" || c.webConfigFile != "web.yml" || c.metricsPath != "/m" ||
				c.logFormat != "logfmt" || c.logLevel != slog.LevelDebug || c.byComm != 20 ||
				c.opts.Netns != 4026531840 || c.opts.RingBytes != 16<<20 {
				t.Errorf("parsed = %+v", c)
			}
		}},
		{name: "ring size in KiB", args: []string{"--ring-size", "256KiB"}, check: func(t *testing.T, c *serveConfig) {
			if c.opts.RingBytes != 256<<10 {
				t.Errorf("ring = %d", c.opts.RingBytes)
			}
		}},
		{name: "ring size not a power of two", args: []string{"--ring-size", "3M"}, wantErr: "not a power of two"},
		{name: "ring size not a size", args: []string{"--ring-size", "big"}, wantErr: "want a size"},
		{name: "bad log format", args: []string{"--log.format", "xml"}, wantErr: "json or logfmt"},
		{name: "bad log level", args: []string{"--log.level", "loud"}, wantErr: "--log.level must be"},
		{name: "bad by-comm", args: []string{"--metrics.by-comm", "5000"}, wantErr: "out of range"},
		{name: "by-pod", args: []string{"--metrics.by-pod", "200", "--pods", "auto", "--kubelet-root", ""},
			check: func(t *testing.T, c *serveConfig) {
				if c.byPod != 200 || c.pods.mode != "auto" || c.pods.cfg.Sources.Kubelet != "" {
					t.Errorf("parsed = %+v", c)
				}
			}},
		{name: "bad by-pod", args: []string{"--metrics.by-pod", "-1"}, wantErr: "--metrics.by-pod -1 is out of range"},
		{name: "bad pods mode", args: []string{"--pods", "on"}, wantErr: "--pods must be auto or off"},
		{name: "telemetry path", args: []string{"--web.telemetry-path", "metrics"}, wantErr: "must start with /"},
		{name: "empty listen address", args: []string{"--web.listen-address", ""}, wantErr: "must not be empty"},
		{name: "shared filter check", args: []string{"--port", "70000"}, wantErr: "out of range"},
		{name: "connection bounds", args: []string{"--web.max-connections", "8", "--web.idle-timeout", "5s"},
			check: func(t *testing.T, c *serveConfig) {
				if c.maxConns != 8 || c.idleTimeout != 5*time.Second {
					t.Errorf("parsed = %+v", c)
				}
			}},
		{name: "connection bound defaults", check: func(t *testing.T, c *serveConfig) {
			if c.maxConns != 64 || c.idleTimeout != time.Minute {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{name: "no connections", args: []string{"--web.max-connections", "0"}, wantErr: "--web.max-connections 0 is out of range"},
		{name: "idle timeout too short", args: []string{"--web.idle-timeout", "10ms"}, wantErr: "--web.idle-timeout 10ms is out of range"},
		{name: "trace-only flag", args: []string{"-o", "json"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseServeFlags(tt.args, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseServeFlags: %v", err)
				}
				tt.check(t, cfg)
				return
			}
			var ue usageError
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
				t.Fatalf("error = %v, want a usage error with %q", err, tt.wantErr)
			}
		})
	}
}

func TestHandlerRoutes(t *testing.T) {
	cfg := &serveConfig{metricsPath: "/metrics"}
	var ready atomic.Bool
	h, err := newHandler(cfg, prometheus.NewRegistry(), &ready, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "not attached") {
		t.Errorf("/readyz before attach = %d %q, want 503", code, body)
	}
	ready.Store(true)
	tests := []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/readyz", http.StatusOK, "ready"},
		{"/healthz", http.StatusOK, "ok"},
		{"/", http.StatusOK, `href="/metrics"`},
		{"/metrics", http.StatusOK, "promhttp_metric_handler_requests_total"},
		{"/nothing", http.StatusNotFound, "not found"},
	}
	for _, tt := range tests {
		if code, body := get(tt.path); code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("GET %s = %d %q, want %d with %q", tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}
}

package main

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/output"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // substring; "" means success
		check   func(*testing.T, *config)
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, c *config) {
			if c.output != "table" || c.opts.PID != 0 || c.opts.All || c.duration != 0 || c.show != output.DefaultSelection() {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{name: "all shows every kind", args: []string{"--all"}, check: func(t *testing.T, c *config) {
			if c.show != output.AllKinds() || !c.opts.All {
				t.Errorf("--all: show %v, stream graceful %v", c.show, c.opts.All)
			}
		}},
		{name: "kinds", args: []string{"--kinds", "unread_close,undrained_close"}, check: func(t *testing.T, c *config) {
			if c.show.String() != "unread_close,undrained_close" || c.opts.All {
				t.Errorf("--kinds: show %v, stream graceful %v", c.show, c.opts.All)
			}
		}},
		{name: "kinds with graceful streams them", args: []string{"--kinds=graceful_close"}, check: func(t *testing.T, c *config) {
			if c.show.String() != "graceful_close" || !c.opts.All {
				t.Errorf("--kinds: show %v, stream graceful %v", c.show, c.opts.All)
			}
		}},
		{name: "unknown kind", args: []string{"--kinds", "unread_close,lost"}, wantErr: `unknown event kind "lost"`},
		{name: "empty kinds", args: []string{"--kinds", ""}, wantErr: "empty event kind"},
		{name: "all and kinds", args: []string{"--all", "--kinds", "unread_close"}, wantErr: "--all and --kinds exclude each other"},
		{name: "all filters", args: []string{"-o", "json", "--pid", "42", "--comm", "nginx", "--port", "443",
			"--netns", "4026531840", "--all", "--duration", "2s"}, check: func(t *testing.T, c *config) {
			o := c.opts
			if c.output != "json" || o.PID != 42 || o.Comm != "nginx" || o.Port != 443 || o.Netns != 4026531840 ||
				!o.All || c.duration != 2*time.Second {
				t.Errorf("parsed = %+v %+v", c, o)
			}
		}},
		{name: "pod defaults", args: nil, check: func(t *testing.T, c *config) {
			p := c.pods
			if p.mode != "auto" || p.cfg.CgroupRoot != "" || p.cfg.Sources.Containerd != "/run/containerd" ||
				p.cfg.Sources.CRIO != "/run/containers/storage" || p.cfg.Sources.Docker != "/var/lib/docker" ||
				p.cfg.Sources.Kubelet != "/var/lib/kubelet" {
				t.Errorf("pod flags = %+v", p)
			}
		}},
		{name: "pod flags", args: []string{"--pods", "off", "--cgroup-root", "/host/cgroup", "--containerd-root",
			"/run/k3s/containerd", "--crio-root", "", "--docker-root", "", "--kubelet-root", "/host/kubelet"},
			check: func(t *testing.T, c *config) {
				p := c.pods
				if p.mode != "off" || p.cfg.CgroupRoot != "/host/cgroup" || p.cfg.Sources.Containerd != "/run/k3s/containerd" ||
					p.cfg.Sources.CRIO != "" || p.cfg.Sources.Docker != "" || p.cfg.Sources.Kubelet != "/host/kubelet" {
					t.Errorf("pod flags = %+v", p)
				}
			}},
		{name: "default budget", args: nil, check: func(t *testing.T, c *config) {
			if c.opts.Budget != defaultBudget {
				t.Errorf("budget %d, want %d", c.opts.Budget, defaultBudget)
			}
		}},
		{name: "no budget", args: []string{"--budget", "0"}, check: func(t *testing.T, c *config) {
			if c.opts.Budget != 0 {
				t.Errorf("budget %d, want 0", c.opts.Budget)
			}
		}},
		{name: "negative budget", args: []string{"--budget", "-1"}, wantErr: "--budget -1 is out of range"},
		{name: "huge budget", args: []string{"--budget", "10000001"}, wantErr: "--budget 10000001 is out of range"},
		{name: "budget not a number", args: []string{"--budget", "lots"}, wantErr: "invalid value"},
		{name: "bad pods mode", args: []string{"--pods", "yes"}, wantErr: "--pods must be auto or off"},
		{name: "bad output", args: []string{"-o", "yaml"}, wantErr: "-o must be table or json"},
		{name: "port out of range", args: []string{"--port", "70000"}, wantErr: "out of range"},
		{name: "port not a number", args: []string{"--port", "http"}, wantErr: "want a positive integer"},
		{name: "zero pid", args: []string{"--pid", "0"}, wantErr: "want a positive integer"},
		{name: "long comm", args: []string{"--comm", "a-very-long-command"}, wantErr: "longer than 15 bytes"},
		{name: "negative duration", args: []string{"--duration", "-1s"}, wantErr: "must not be negative"},
		{name: "unknown flag", args: []string{"--bogus"}, wantErr: "flag provided but not defined"},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("parseFlags: %v", err)
				}
				tt.check(t, cfg)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("parseFlags error = %v, want %q", err, tt.wantErr)
			}
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("error %v is not a usage error (exit status 2)", err)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	_, err := parseFlags([]string{"-h"}, &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "Usage: tcpclose-trace") {
		t.Fatalf("err = %v, output %q", err, out.String())
	}
}

func TestSizeFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{in: "262144", want: 262144},
		{in: "4096B", want: 4096},
		{in: "256K", want: 256 << 10},
		{in: "256k", want: 256 << 10},
		{in: "256KiB", want: 256 << 10},
		{in: "256kb", want: 256 << 10},
		{in: "4M", want: 4 << 20},
		{in: "4Mi", want: 4 << 20},
		{in: "1G", want: 1 << 30},
		{in: "1024G", want: 1 << 40},
		{in: "1025G", wantErr: "too large"},
		{in: "17179869184G", wantErr: "too large"}, // 2^64: wrapped to 0 (the default)
		{in: "17179869185G", wantErr: "too large"}, // 2^64 + 1G: wrapped to a 1G ring
		{in: "18446744073709551615K", wantErr: "too large"},
		{in: "18446744073709551616", wantErr: "want a size"},
		{in: "4MK", wantErr: "want a size"}, // was 4M
		{in: "4KM", wantErr: "want a size"},
		{in: "4KK", wantErr: "want a size"},
		{in: "4BB", wantErr: "want a size"},
		{in: "4iB", wantErr: "want a size"},
		{in: "4T", wantErr: "want a size"},
		{in: "M", wantErr: "want a size"},
		{in: "", wantErr: "want a size"},
		{in: "0", wantErr: "want a size"},
		{in: "0K", wantErr: "want a size"},
		{in: "-4M", wantErr: "want a size"},
		{in: "+4M", wantErr: "want a size"},
		{in: " 4M", wantErr: "want a size"},
		{in: "4 M", wantErr: "want a size"},
		{in: "0x10M", wantErr: "want a size"},
		{in: "4.5M", wantErr: "want a size"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var f sizeFlag
			err := f.Set(tt.in)
			if tt.wantErr == "" {
				if err != nil || f.v != tt.want {
					t.Fatalf("Set(%q) = %d, %v; want %d", tt.in, f.v, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Set(%q) = %d, %v; want error %q", tt.in, f.v, err, tt.wantErr)
			}
			// Through the command line: a usage error (exit status 2).
			_, err = parseFlags([]string{"--ring-size", tt.in}, io.Discard)
			var ue usageError
			if err == nil || !errors.As(err, &ue) || strings.Contains(err.Error(), "\n") {
				t.Errorf("--ring-size %q: error %v, want a one-line usage error", tt.in, err)
			}
		})
	}
}

package loadgen

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestWorkloads(t *testing.T) {
	for _, w := range append(slices.Clone(Workloads), FullTables) {
		for _, ipv6 := range []bool{false, true} {
			name := string(w) + map[bool]string{false: "/ipv4", true: "/ipv6"}[ipv6]
			t.Run(name, func(t *testing.T) {
				o := Options{Conns: 300, Duration: 10 * time.Second, IPv6: ipv6}
				if w == Idle {
					o.Duration = 100 * time.Millisecond
				}
				res, err := Run(context.Background(), w, o)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case w == Idle && (res.Conns != 0 || res.Elapsed < 100*time.Millisecond):
					t.Errorf("idle: %+v", res)
				case w != Idle && (res.Conns != 300 || res.Errors != 0):
					t.Errorf("%s: %+v, want 300 connections and no errors", w, res)
				}
				if w != Idle && res.PerSecond() <= 0 {
					t.Errorf("rate %v", res.PerSecond())
				}
			})
		}
	}
}

func TestRate(t *testing.T) {
	res, err := Run(context.Background(), ClosedPort, Options{Conns: 400, Duration: 10 * time.Second, Rate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// 400 connections at 1000/s take at least 399 ms; the bound is loose above.
	if res.Conns != 400 || res.Elapsed < 399*time.Millisecond || res.Elapsed > 5*time.Second {
		t.Errorf("paced run: %d connections in %v, want 400 in about 400ms", res.Conns, res.Elapsed)
	}
}

func TestBoundedByTime(t *testing.T) {
	start := time.Now()
	res, err := Run(context.Background(), Graceful, Options{Conns: 1 << 30, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second || res.Conns == 0 {
		t.Errorf("ran %v for %d connections, want about 300ms", took, res.Conns)
	}
}

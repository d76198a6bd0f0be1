package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
)

// goBench is one Go benchmark's result.
type goBench struct {
	ns     float64 // per op
	allocs int64   // per op
}

// encoderBenchmarks pairs each hand-written encoder's benchmark (package
// output) with its library baseline.
var encoderBenchmarks = []struct{ part, hand, lib, libName, mode string }{
	{"NDJSON encoder (output/encode.go)", "BenchmarkAppendRecord", "BenchmarkEncodingJSON", "encoding/json", "tcpclose-trace (trace"},
	{"JSON log line (output/log.go)", "BenchmarkLogLine", "BenchmarkSlogLine", "log/slog's JSON handler", "tcpclose-trace (serve"},
}

// runGoBenchmarks runs the encoders' Go benchmarks with the go command, in
// the source tree this is run from (make bench runs it from the
// repository's root); it notes why where it cannot.
func (b *bench) runGoBenchmarks(ctx context.Context) error {
	if _, err := os.Stat("output"); err != nil {
		return fmt.Errorf("no source tree here: %w", err)
	}
	var names []string
	for _, e := range encoderBenchmarks {
		names = append(names, e.hand, e.lib)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^("+strings.Join(names, "|")+")$",
		"-benchmem", "-count", "3", "./output/")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go test -bench: %v: %s", err, oneLine(stderr.String()+string(out)))
	}
	b.benches = parseGoBench(out)
	return nil
}

// parseGoBench reads `go test -bench -benchmem` output: per benchmark,
// the median of its ns/op and its allocs/op.
func parseGoBench(out []byte) map[string]goBench {
	nss := map[string][]float64{}
	allocs := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "-")
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				nss[name] = append(nss[name], v)
			case "allocs/op":
				allocs[name] = int64(v)
			}
		}
	}
	res := map[string]goBench{}
	for name, vs := range nss {
		res[name] = goBench{ns: summarize(vs).median, allocs: allocs[name]}
	}
	return res
}

// abRatio is the share of the hand-written part's figure that the library
// adds: (lib - hand) / hand.
func abRatio(hand, lib float64) float64 {
	if hand <= 0 {
		return 0
	}
	return (lib - hand) / hand
}

// writeAB writes the table "written by hand vs the library", both sides
// from this run, and says for each hand-written part whether it pays (at
// least 20% of the tracer's CPU per event, or of its wakeups).
func (b *bench) writeAB(w io.Writer, gs []group) {
	fmt.Fprintf(w, "## Written by hand vs the library\n\n")
	fmt.Fprintf(w, "A hand-written part is kept only where it pays at least 20%% of the tracer's CPU per event or of its wakeups, "+
		"in this run. Encoders: Go benchmarks (`go test -bench -benchmem ./output/`, 3 counts, median) run by this benchmark; "+
		"the saving is set against the tracer's whole CPU per event of the mode that uses the encoder (W2, no budget where measured). "+
		"Ring reader and drain clock (`collector/ring.go`, `collector/wake.go`): the tracer built as released against the same "+
		"tracer built with `-tags ringlib` (`collector/ring_lib.go`: cilium/ebpf's `ringbuf.Reader`, read until empty at each drain, "+
		"and a Go timer for the period), both with `--budget 0` so that every event is streamed, in the same interleaved runs.\n\n")
	fmt.Fprintf(w, "| part | measured on | written by hand | library | library costs more by | pays (>= 20%%) |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, e := range encoderBenchmarks {
		h, okh := b.benches[e.hand]
		l, okl := b.benches[e.lib]
		if !okh || !okl {
			fmt.Fprintf(w, "| %s | Go benchmark | - | - | - | not measured in this run |\n", e.part)
			continue
		}
		per := time.Duration(0)
		where := ""
		for _, wl := range []loadgen.Workload{loadgen.Unread} {
			prefix := e.mode
			if strings.HasPrefix(e.mode, "tcpclose-trace (trace") {
				if _, ok := findGroup(gs, wl, noBudgetTool); ok {
					prefix = noBudgetTool
				}
			}
			if g, ok := findGroup(gs, wl, prefix); ok && totalEvents(g.samples) > 0 {
				per, where = perEvent(g.samples), fmt.Sprintf("%s %s", wl, g.tool)
			}
		}
		pays := "-"
		if per > 0 {
			share := (l.ns - h.ns) / float64(per.Nanoseconds())
			pays = fmt.Sprintf("%s: %.0f%% of the tracer's %s per event (%s)", map[bool]string{true: "yes", false: "**no**"}[share >= 0.2],
				share*100, per.Round(10*time.Nanosecond), where)
		}
		fmt.Fprintf(w, "| %s | Go benchmark, ns per event | %.0f ns, %d allocs | %.0f ns, %d allocs (%s) | %+.0f%% | %s |\n", e.part,
			h.ns, h.allocs, l.ns, l.allocs, e.libName, abRatio(h.ns, l.ns)*100, pays)
	}
	// The ring reader: per workload, and at the sustained rate.
	type side struct {
		cpu  time.Duration
		wake float64
		ok   bool
	}
	measure := func(ss []sample) side {
		if totalEvents(ss) == 0 {
			return side{}
		}
		var vs []float64
		for _, s := range ss {
			vs = append(vs, wakeups(s))
		}
		return side{cpu: perEvent(ss), wake: summarize(vs).median, ok: true}
	}
	var rows []struct {
		where      string
		hand, lib  side
		handRange  string
		libRange   string
		handEvents int64
	}
	cpuRange := func(ss []sample) string {
		var vs []float64
		for _, s := range ss {
			if s.events > 0 {
				vs = append(vs, float64(s.cpu.Nanoseconds())/float64(s.events))
			}
		}
		r := summarize(vs)
		return fmt.Sprintf("%.0f-%.0f ns", r.min, r.max)
	}
	for _, wl := range streaming {
		h, okh := findGroup(gs, wl, noBudgetTool)
		l, okl := findGroup(gs, wl, ringlibTool)
		if okh && okl {
			rows = append(rows, struct {
				where      string
				hand, lib  side
				handRange  string
				libRange   string
				handEvents int64
			}{fmt.Sprintf("%s, %d runs each", wl, len(h.samples)), measure(h.samples), measure(l.samples), cpuRange(h.samples), cpuRange(l.samples), totalEvents(h.samples)})
		}
	}
	var sh, sl []sample
	for _, s := range b.steady {
		switch s.tool {
		case noBudgetTool:
			sh = append(sh, s)
		case ringlibTool:
			sl = append(sl, s)
		}
	}
	if len(sh) > 0 && len(sl) > 0 {
		rows = append(rows, struct {
			where      string
			hand, lib  side
			handRange  string
			libRange   string
			handEvents int64
		}{fmt.Sprintf("W4 paced at %.0fk events/s", b.sustainedRate()/1000), measure(sh), measure(sl), cpuRange(sh), cpuRange(sl), totalEvents(sh)})
	}
	if len(rows) == 0 {
		fmt.Fprintf(w, "| ring reader + drain clock | - | - | - | - | not measured in this run (tcpclose-bench -tracer-ringlib) |\n")
	}
	for _, r := range rows {
		if !r.hand.ok || !r.lib.ok {
			continue
		}
		dc := abRatio(float64(r.hand.cpu), float64(r.lib.cpu))
		dw := abRatio(r.hand.wake, r.lib.wake)
		pays := map[bool]string{true: "yes", false: "**no**"}[dc >= 0.2 || dw >= 0.2]
		fmt.Fprintf(w, "| ring reader + drain clock | %s | %s per event (%s), %.0f wakeups/s | %s per event (%s), %.0f wakeups/s (ringbuf.Reader) | CPU %+.0f%%, wakeups %+.0f%% | %s |\n",
			r.where, r.hand.cpu.Round(10*time.Nanosecond), r.handRange, r.hand.wake, r.lib.cpu.Round(10*time.Nanosecond), r.libRange, r.lib.wake,
			dc*100, dw*100, pays)
	}
	fmt.Fprintf(w, "\n*wakeups/s*: the tracer's voluntary context switches (all threads) per second of its life, as in the tables above; "+
		"*per event*: its whole CPU time (user and system) over the events it wrote.\n\n")
}

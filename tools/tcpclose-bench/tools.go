package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/loadgen"
)

// tool is a tracer (or none) run around one workload.
type tool struct {
	name string
	// start launches it and returns once it traces; nil for "none".
	start func(ctx context.Context, b *bench) (*running, error)
	// only lists the workloads it runs; nil for every one.
	only []loadgen.Workload
}

// running is a started tool: its process and what it printed.
type running struct {
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the process has been waited for
	exitErr  error
	stderr   strings.Builder
	lines    int64
	first    []string        // the first lines printed
	latency  []time.Duration // close to stdout, from the event's own time
	mu       sync.Mutex
	readDone chan struct{}
	cpu0     time.Duration
	ctx0     int64
	started  time.Time
	metrics  string // serve mode: /metrics base URL
	stopOnce sync.Once
}

// bpftraceScript prints every TCP state change and reset, as bcc's
// tcpstates would: the nearest job a general tool does.
const bpftraceScript = `tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {
  printf("%d %s %d %d %d %d\n", pid, comm, args->sport, args->dport, args->oldstate, args->newstate);
}
tracepoint:tcp:tcp_send_reset { printf("rst-sent %d %d\n", args->state, args->reason); }
tracepoint:tcp:tcp_receive_reset { printf("rst-recv %d %d\n", args->sport, args->dport); }
`

// noBudgetTool is the trace mode without its default budget (--budget 0),
// on the event storms only: what the budget saves.
const noBudgetTool = "tcpclose-trace --budget 0 (trace, NDJSON)"

// ringlibTool is noBudgetTool built with -tags ringlib: the ring read with
// cilium/ebpf's ringbuf.Reader and drained on a Go timer, in place of the
// collector's own reader and drain clock (the A/B of issue 17).
const ringlibTool = "tcpclose-trace --budget 0, ringbuf.Reader (trace, NDJSON)"

// streaming lists the workloads where every connection streams events:
// where the no-budget runs and the ring reader's A/B run.
var streaming = []loadgen.Workload{loadgen.Unread, loadgen.LingerZero, loadgen.ClosedPort, loadgen.Burst}

// stacksTool is the trace mode with --stacks: nothing more without
// anomalies (W1), a stack per bad close (W2).
const stacksTool = "tcpclose-trace --stacks (trace, NDJSON)"

// numOwnTools counts the tools tools() lists first: none and tcpclose-trace's two modes.
const numOwnTools = 3

// hooksTool names the empty programs on our tracepoints: the cost of hooking alone.
const hooksTool = "empty programs on the same tracepoints"

func tools(b *bench) []tool {
	ts := []tool{
		{name: "none"},
		{name: "tcpclose-trace (trace, NDJSON)", start: func(ctx context.Context, b *bench) (*running, error) { return b.startTrace(ctx) }},
		{name: "tcpclose-trace (serve)", start: func(ctx context.Context, b *bench) (*running, error) {
			addr := "127.0.0.1:19181"
			r, err := launch(ctx, b.tracer, []string{"serve", "--web.listen-address", addr}, false)
			if err != nil {
				return nil, err
			}
			r.metrics = "http://" + addr
			return r, r.waitFor(func() bool {
				resp, err := http.Get(r.metrics + "/readyz")
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			})
		}},
		{name: noBudgetTool, only: streaming,
			start: func(ctx context.Context, b *bench) (*running, error) { return b.startTrace(ctx, "--budget", "0") }},
		{name: stacksTool, only: []loadgen.Workload{loadgen.Graceful, loadgen.Unread},
			start: func(ctx context.Context, b *bench) (*running, error) { return b.startTrace(ctx, "--stacks") }},
	}
	if b.ringlib != "" {
		ts = append(ts, tool{name: ringlibTool, only: streaming, start: func(ctx context.Context, b *bench) (*running, error) {
			return b.startTraceWith(ctx, b.ringlib, "--budget", "0")
		}})
	}
	ts = append(ts, tool{name: hooksTool, start: func(ctx context.Context, b *bench) (*running, error) {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		r, err := launch(ctx, self, []string{"hooks"}, false)
		if err != nil {
			return nil, err
		}
		return r, r.waitFor(func() bool { return r.countLines() > 0 })
	}})
	if !b.quick {
		ts = append(ts, tool{name: "bpftrace (state changes + resets)", start: func(ctx context.Context, b *bench) (*running, error) {
			script := b.tmp("tcpstates.bt")
			if err := os.WriteFile(script, []byte(bpftraceScript), 0o644); err != nil {
				return nil, err
			}
			return launchBpftrace(ctx, script)
		}})
	}
	return ts
}

func launchBpftrace(ctx context.Context, script string) (*running, error) {
	r, err := launch(ctx, "bpftrace", []string{script}, false)
	if err != nil {
		return nil, err
	}
	// bpftrace prints "Attaching N probes..." once it has attached.
	return r, r.waitFor(func() bool { return r.countLines() > 0 })
}

// launch starts a tracer with its stdout read (and, with parseTimes, each
// line's "time" field turned into a latency) by this process.
func launch(ctx context.Context, path string, args []string, parseTimes bool) (*running, error) {
	r := &running{cmd: exec.CommandContext(ctx, path, args...), exited: make(chan struct{}), readDone: make(chan struct{})}
	r.cmd.Stderr = &r.stderr
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	// A 1 MiB pipe: the tracer must not wait on this reader.
	if f, ok := stdout.(*os.File); ok {
		_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
	}
	go func() {
		defer close(r.readDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var lines int64
		for sc.Scan() {
			lines++
			// Every line is counted; one in latencyEvery is timed, which
			// keeps this reader cheap at 100k lines per second.
			if lines > maxFirstLines && (!parseTimes || lines%latencyEvery != 0) {
				if lines%1024 == 0 {
					r.mu.Lock()
					r.lines = lines
					r.mu.Unlock()
				}
				continue
			}
			now := time.Now()
			r.mu.Lock()
			r.lines = lines
			if len(r.first) < maxFirstLines {
				r.first = append(r.first, sc.Text())
			}
			if parseTimes {
				if t, ok := eventTime(sc.Bytes()); ok {
					r.latency = append(r.latency, now.Sub(t))
				}
			}
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.lines = lines
		r.mu.Unlock()
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { <-r.readDone; r.exitErr = r.cmd.Wait(); close(r.exited) }()
	return r, nil
}

// latencyEvery: one line in this many is timed.
const latencyEvery = 4

// eventTime finds the "time" field of an NDJSON record without a full decode.
func eventTime(line []byte) (time.Time, bool) {
	const key = `"time":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return time.Time{}, false
	}
	line = line[i+len(key):]
	j := bytes.IndexByte(line, '"')
	if j < 0 {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(line[:j]))
	return t, err == nil
}

// maxFirstLines is how many of a tool's first lines are kept.
const maxFirstLines = 8

// eventLines counts the lines among the first that report events: not
// bpftrace's "Attaching N probes..." and not the header, which every peer
// prints before its first event.
func (r *running) eventLines() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, header := 0, false
	for _, l := range r.first {
		switch {
		case strings.HasPrefix(l, "Attaching ") || strings.TrimSpace(l) == "":
		case !header:
			header = true
		default:
			n++
		}
	}
	return n
}

// exitedEarly reports whether the process ended before it was stopped, and how.
func (r *running) exitedEarly() (bool, error) {
	select {
	case <-r.exited:
		return true, r.exitErr
	default:
		return false, nil
	}
}

func (r *running) countLines() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines
}

// waitFor polls ready for 30 s, then notes the start counters.
func (r *running) waitFor(ready func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		select {
		case <-r.exited:
			return fmt.Errorf("%s exited before it was ready: %v: %s", r.cmd.Path, r.exitErr, firstLine(r.stderr.String()))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			r.stop()
			return fmt.Errorf("%s not ready within 30 s", r.cmd.Path)
		}
	}
	time.Sleep(200 * time.Millisecond) // let start-up work settle
	r.cpu0, _ = processCPU(r.cmd.Process.Pid)
	r.ctx0, _ = contextSwitches(r.cmd.Process.Pid)
	r.started = time.Now()
	return nil
}

// stop ends the tool with SIGINT (SIGKILL after 10 s); it may be called again.
func (r *running) stop() {
	r.stopOnce.Do(func() {
		_ = r.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.exited
		}
	})
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// processCPU is the CPU time of all the process's threads, in nanoseconds
// (the scheduler's run time from /proc/PID/task/TID/schedstat): /proc/PID/stat
// counts in 10 ms ticks, a quarter of a microsecond per event over a run of
// 40,000 events, as much as the differences measured. A thread that exited
// is not counted; the tracer's threads live as long as it does.
func processCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // exited meanwhile
		}
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			return 0, fmt.Errorf("empty /proc/%d/task/%s/schedstat", pid, t.Name())
		}
		ns, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/task/%s/schedstat: %w", pid, t.Name(), err)
		}
		total += time.Duration(ns)
	}
	return total, nil
}

// statusField reads a numeric field of /proc/PID[/task/TID]/status.
func statusField(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

// contextSwitches sums the voluntary context switches of all threads: each
// is a sleep that ended in a wakeup.
func contextSwitches(pid int) (int64, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, t := range tasks {
		n += statusField(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()), "voluntary_ctxt_switches")
	}
	return n, nil
}

// peakRSS is the process's peak resident set, in bytes.
func peakRSS(pid int) int64 {
	return statusField(fmt.Sprintf("/proc/%d/status", pid), "VmHWM") << 10
}

// startTrace starts the trace mode writing NDJSON, with extra flags, and
// returns once its programs are attached.
func (b *bench) startTrace(ctx context.Context, extra ...string) (*running, error) {
	return b.startTraceWith(ctx, b.tracer, extra...)
}

// startTraceWith is startTrace with another build of the tracer.
func (b *bench) startTraceWith(ctx context.Context, tracer string, extra ...string) (*running, error) {
	ready := b.tmp("ready")
	os.Remove(ready)
	r, err := launch(ctx, tracer, append([]string{"-o", "json", "--ready-file", ready}, extra...), true)
	if err != nil {
		return nil, err
	}
	return r, r.waitFor(func() bool { _, err := os.Stat(ready); return err == nil })
}

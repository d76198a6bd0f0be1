package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/bpfprogs"
)

// goneWithin is how long programs may stay loaded after their tracer
// exits or closes: the kernel frees them a moment after their last
// reference goes.
const goneWithin = 2 * time.Second

// heldPrograms collects the ids of the BPF programs one tracer process
// holds while it runs, so that once it has exited the test checks that
// those programs are gone, and not whatever other tracers on the host have
// loaded meanwhile.
type heldPrograms struct {
	proc *bpfprogs.Process

	mu  sync.Mutex
	ids []ebpf.ProgramID
	err error
}

// watchPrograms binds to the process of cmd, started and not yet waited
// for (so that its pid is still its own).
func watchPrograms(t *testing.T, cmd *exec.Cmd) *heldPrograms {
	t.Helper()
	p, err := bpfprogs.Open(cmd.Process.Pid)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return &heldPrograms{proc: p}
}

// read adds the programs the process holds now.
func (h *heldPrograms) read() {
	ids, err := h.proc.Held()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil && h.err == nil {
		h.err = err
	}
	for _, id := range ids {
		if !slices.Contains(h.ids, id) {
			h.ids = append(h.ids, id)
		}
	}
}

// runWatched runs cmd to its end while polling, every period, the programs
// it holds; it returns those programs and cmd.Wait's error.
func runWatched(t *testing.T, cmd *exec.Cmd, period time.Duration) (*heldPrograms, error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	progs := watchPrograms(t, cmd)
	stopPoll := progs.poll(period)
	err := cmd.Wait()
	stopPoll()
	return progs, err
}

// poll reads every period until the returned stop is called, for a process
// that gives no sign of when its programs are loaded. stop reads a last
// time.
func (h *heldPrograms) poll(period time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			h.read()
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(quit)
		<-done
		h.read()
	}
}

// seen returns the ids read so far and the first read error.
func (h *heldPrograms) seen() ([]ebpf.ProgramID, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ids), h.err
}

// requireLoaded fails the test unless the process was seen holding at least
// all of our programs (else checking that they are gone proves nothing).
func (h *heldPrograms) requireLoaded(t *testing.T) {
	t.Helper()
	ids, err := h.seen()
	if err != nil {
		t.Fatalf("read the tracer's programs: %v", err)
	}
	if want := len(kernelSupport(t).Hooks); len(ids) < want {
		t.Fatalf("the tracer was seen holding programs %v, want at least %d", ids, want)
	}
}

// checkGone asserts that every program the process was seen holding is
// gone, once it has exited.
func (h *heldPrograms) checkGone(t *testing.T) {
	t.Helper()
	ids, err := h.seen()
	if err != nil {
		t.Errorf("read the tracer's programs: %v", err)
	}
	checkProgramsGone(t, ids)
}

// reporter is the part of testing.T that checkProgramsGone reports to.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// recorder is a reporter that keeps what it is told.
type recorder struct{ errs []string }

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// checkProgramsGone asserts that each program of ids is unloaded within
// goneWithin.
func checkProgramsGone(t reporter, ids []ebpf.ProgramID) {
	t.Helper()
	left, err := bpfprogs.WaitGone(ids, goneWithin)
	if err != nil {
		t.Errorf("look up programs %v: %v", ids, err)
	}
	if len(left) > 0 {
		t.Errorf("programs left loaded: %v", left)
	}
}

// TestLeftoverCheck proves the leftover check on our real programs: it must
// name a program that outlives the tracer (here one descriptor of it kept
// open, as a leaking tracer would) and pass once that goes. It also checks
// that the tracer's programs are those its process is seen holding, as the
// subprocess tests read them.
func TestLeftoverCheck(t *testing.T) {
	requireHost(t)
	c, err := collector.Open(collector.Options{Netns: 1}) // no namespace has inode 1: records nothing
	if err != nil {
		t.Fatalf("open collector: %v", err)
	}
	ids, err := c.ProgramIDs()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	if want := len(kernelSupport(t).Hooks); len(ids) != want || c.Attached() != want {
		t.Errorf("ProgramIDs() = %v, %d attached, want %d of each", ids, c.Attached(), want)
	}
	held, err := bpfprogs.Held(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !slices.Contains(held, id) {
			t.Errorf("program %d of the collector is not among those this process holds: %v", id, held)
		}
	}

	leak, err := ebpf.NewProgramFromID(ids[0])
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	defer leak.Close()
	if err := c.Close(); err != nil {
		t.Fatalf("close collector: %v", err)
	}

	// The check the tests run names the program, and only it.
	var rec recorder
	checkProgramsGone(&rec, ids)
	left, err := bpfprogs.Loaded(ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].ID != ids[0] {
		t.Fatalf("with program %d kept open, still loaded: %v; want exactly that one", ids[0], left)
	}
	info, err := leak.Info()
	if err != nil {
		t.Fatal(err)
	}
	if left[0].Name != info.Name {
		t.Errorf("leftover named %q, want %q", left[0].Name, info.Name)
	}
	if want := left[0].String(); len(rec.errs) != 1 || !strings.Contains(rec.errs[0], want) {
		t.Errorf("checkProgramsGone reported %q, want one error naming %s", rec.errs, want)
	}

	if err := leak.Close(); err != nil {
		t.Fatal(err)
	}
	checkProgramsGone(t, ids)
}

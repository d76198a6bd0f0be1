package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Markers the guest's /init writes on the second serial port: around the
// suite's output, then around the self-test's JSON report.
const (
	markBegin         = "VMTEST-BEGIN "
	markExit          = "VMTEST-EXIT "
	markSelftestBegin = "VMTEST-SELFTEST-BEGIN"
	markSelftestExit  = "VMTEST-SELFTEST-EXIT "
)

// Machine is one qemu run.
type Machine struct {
	Arch      *Arch         // the emulator and its devices
	Kernel    string        // vmlinuz
	Initramfs string        // cpio archive
	Memory    string        // e.g. "2G"
	CPUs      int           // -smp
	Console   string        // file for the first serial port: kernel log, /init's messages
	Timeout   time.Duration // qemu is killed (by its pid) when exceeded
}

// Outcome is what the guest reported.
type Outcome struct {
	Release  string        // uname -r in the guest
	ExitCode int           // the suite's exit status; -1 if it never ended
	Boot     time.Duration // qemu start to the guest's begin marker
	Suite    time.Duration // begin marker to exit marker
	// Selftest is what `tcpclose-trace selftest -o json` printed after the
	// suite; SelftestExit its exit status, -1 if it never ended.
	Selftest     string
	SelftestExit int
}

// Run boots the machine and copies what the guest writes between its begin
// and exit markers on the second serial port to out, line by line, as it
// arrives; the self-test report that follows goes into the Outcome. It
// returns once qemu has exited.
func (m *Machine) Run(ctx context.Context, out io.Writer) (*Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	cmd := exec.Command(m.Arch.QEMU, m.args()...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start qemu: %w", err)
	}
	// On the timeout or an interrupt, kill this qemu by its pid. After Wait
	// has reaped it, Kill is a no-op (os.ErrProcessDone).
	go func() {
		<-ctx.Done()
		_ = cmd.Process.Kill()
	}()

	g := newGuestOutput(out, start)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if err := g.line(sc.Text(), time.Now()); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, err
		}
	}
	werr := cmd.Wait()
	o := g.outcome()
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return o, fmt.Errorf("qemu killed after the %v timeout", m.Timeout)
	case ctx.Err() != nil:
		return o, fmt.Errorf("qemu killed: %w", ctx.Err())
	case werr != nil:
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			return o, fmt.Errorf("qemu: %w: %s", werr, strings.TrimSpace(stderr.String()))
		}
		return o, fmt.Errorf("qemu: %w", werr)
	case g.began.IsZero():
		return o, errors.New("the guest never started the suite (see the console log)")
	case g.ended.IsZero():
		return o, errors.New("the suite did not end (see the console log)")
	}
	return o, nil
}

// args are qemu's arguments: software emulation (KVM guests hang on these
// hosts), the kernel's console in the console log, the guest's output
// device on qemu's stdout.
func (m *Machine) args() []string {
	args := append(slices.Clip(m.Arch.Machine),
		"-smp", strconv.Itoa(m.CPUs), "-m", m.Memory,
		"-nographic", "-monitor", "none", "-no-reboot",
		"-kernel", m.Kernel, "-initrd", m.Initramfs,
		"-append", "console="+m.Arch.Console+" panic=-1 loglevel=4 rdinit=/init",
		"-serial", "file:"+m.Console)
	return append(args, m.Arch.OutputArgs...)
}

// guestOutput follows what the guest's /init writes on the second serial
// port: the release and the suite's output (copied to out as it arrives)
// between the suite's markers, then the self-test's report between its own.
type guestOutput struct {
	out   io.Writer
	start time.Time
	o     Outcome

	began, ended           time.Time
	selftestIn, selftestOK bool
	selftest               strings.Builder
}

func newGuestOutput(out io.Writer, start time.Time) *guestOutput {
	return &guestOutput{out: out, start: start, o: Outcome{ExitCode: -1, SelftestExit: -1}}
}

// line takes one line of the serial port, read at now.
func (g *guestOutput) line(line string, now time.Time) error {
	line = strings.TrimRight(line, "\r")
	switch {
	case g.began.IsZero():
		if rel, ok := strings.CutPrefix(line, markBegin); ok {
			g.began = now
			g.o.Release = strings.TrimSpace(rel)
		}
	case g.ended.IsZero():
		if code, ok := strings.CutPrefix(line, markExit); ok {
			g.ended = now
			g.o.ExitCode = exitCode(code)
			return nil
		}
		if _, err := io.WriteString(g.out, line+"\n"); err != nil {
			return fmt.Errorf("copy guest output: %w", err)
		}
	case !g.selftestIn && !g.selftestOK:
		g.selftestIn = line == markSelftestBegin
	case g.selftestIn:
		if code, ok := strings.CutPrefix(line, markSelftestExit); ok {
			g.selftestIn, g.selftestOK = false, true
			g.o.SelftestExit = exitCode(code)
			return nil
		}
		g.selftest.WriteString(line + "\n")
	}
	return nil
}

// outcome is what the guest reported so far.
func (g *guestOutput) outcome() *Outcome {
	o := g.o
	if !g.began.IsZero() {
		o.Boot = g.began.Sub(g.start)
		if !g.ended.IsZero() {
			o.Suite = g.ended.Sub(g.began)
		}
	}
	o.Selftest = g.selftest.String()
	return &o
}

// exitCode parses a marker's exit status; -1 if it is not a number.
func exitCode(s string) int {
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return -1
	}
	return v
}

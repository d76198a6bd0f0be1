package vmtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Markers the guest's /init writes around the suite's output on the second
// serial port.
const (
	markBegin = "VMTEST-BEGIN "
	markExit  = "VMTEST-EXIT "
)

// Machine is one qemu run.
type Machine struct {
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
}

// Run boots the machine and copies what the guest writes between its begin
// and exit markers on the second serial port to out, line by line, as it
// arrives. It returns once qemu has exited.
func (m *Machine) Run(ctx context.Context, out io.Writer) (*Outcome, error) {
	ctx, cancel := context.WithTimeout(ctx, m.Timeout)
	defer cancel()
	args := []string{
		// Software emulation: KVM guests hang on these hosts. One host
		// thread for all vCPUs: with multi-threaded TCG, 6.12 oopses at boot
		// (int3 in run_timer_softirq while another vCPU patches kernel text).
		"-accel", "tcg,thread=single", "-cpu", "max",
		"-smp", strconv.Itoa(m.CPUs), "-m", m.Memory,
		"-nographic", "-monitor", "none", "-no-reboot",
		"-kernel", m.Kernel, "-initrd", m.Initramfs,
		"-append", "console=ttyS0 panic=-1 loglevel=4 rdinit=/init",
		"-serial", "file:" + m.Console, // ttyS0
		"-serial", "stdio", // ttyS1: the suite
	}
	cmd := exec.Command("qemu-system-x86_64", args...)
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

	o := &Outcome{ExitCode: -1}
	var began, ended time.Time
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, markBegin) && began.IsZero():
			began = time.Now()
			o.Release = strings.TrimSpace(strings.TrimPrefix(line, markBegin))
		case strings.HasPrefix(line, markExit) && !began.IsZero() && ended.IsZero():
			ended = time.Now()
			if v, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, markExit))); err == nil {
				o.ExitCode = v
			}
		case !began.IsZero() && ended.IsZero():
			if _, err := io.WriteString(out, line+"\n"); err != nil {
				_ = cmd.Process.Kill()
				return nil, fmt.Errorf("copy guest output: %w", err)
			}
		}
	}
	werr := cmd.Wait()
	if !began.IsZero() {
		o.Boot = began.Sub(start)
		if !ended.IsZero() {
			o.Suite = ended.Sub(began)
		}
	}
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
	case began.IsZero():
		return o, errors.New("the guest never started the suite (see the console log)")
	case ended.IsZero():
		return o, errors.New("the suite did not end (see the console log)")
	}
	return o, nil
}

// Command tcpclose-vmtest runs the end-to-end suite on other kernels: it
// boots Debian's cloud kernels under qemu (software emulation) with a busybox
// initramfs holding the statically built suite, optionally runs the same
// suite on the host, and prints pass/fail/skip per test per kernel. After the
// suite, `tcpclose-trace selftest -o json` runs on the same kernel, and a
// second table shows which detection works on which kernel.
//
//	tcpclose-vmtest run -kernels 6.1,6.12 -host   # boot, run, print the matrix
//	tcpclose-vmtest run -kernels 6.1-arm64        # an arm64 guest (qemu-system-aarch64)
//	tcpclose-vmtest matrix RESULT.json...         # print saved results again
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
	"github.com/tcpclose-trace/tcpclose-trace/tools/internal/testmatrix"
	"github.com/tcpclose-trace/tcpclose-trace/tools/internal/vmtest"
)

const usage = `Usage: tcpclose-vmtest run [flags]        run the e2e suite and the selftest on Debian kernels under qemu (root)
       tcpclose-vmtest matrix FILE.json...   print saved results as the two tables (tests, detections)

Flags of run:
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := runMain(ctx, os.Args[1:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tcpclose-vmtest: %v\n", err)
		os.Exit(1)
	}
}

// errFailed means the matrix was printed and some run failed.
var errFailed = errors.New("some tests failed or a run did not complete")

func runMain(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:])
	case "matrix":
		return matrixCmd(args[1:])
	}
	fmt.Fprint(os.Stderr, usage)
	return flag.ErrHelp
}

// config is what run needs.
type config struct {
	kernels []vmtest.Target
	host    bool
	suite   bool // run the e2e suite before the self-test
	cache   string
	run     string
	timeout time.Duration
	memory  string
	cpus    int
	out     string
}

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, usage); fs.PrintDefaults() }
	var cfg config
	kernels := fs.String("kernels", "6.1,6.12", "comma-separated Debian kernel series to boot, SERIES for the host's architecture or SERIES-ARCH (e.g. 6.1-arm64); empty: none")
	fs.BoolVar(&cfg.suite, "suite", true, "run the end-to-end suite before the selftest (false: only the selftest)")
	fs.BoolVar(&cfg.host, "host", false, "also run the suite on the host kernel (a column of its own)")
	fs.StringVar(&cfg.cache, "cache", ".cache/vmtest", "cache: downloaded packages, kernels, builds, results")
	fs.StringVar(&cfg.run, "run", "", "run only the tests matching this regular expression (go test -run)")
	fs.DurationVar(&cfg.timeout, "timeout", 60*time.Minute, "limit per kernel, boot and selftest included")
	fs.StringVar(&cfg.memory, "memory", "2G", "guest memory")
	fs.IntVar(&cfg.cpus, "smp", 2, "guest CPUs")
	fs.StringVar(&cfg.out, "o", "", "also write the matrix (Markdown) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, k := range strings.Split(*kernels, ",") {
		if k = strings.TrimSpace(k); k != "" {
			t, err := vmtest.ParseTarget(k)
			if err != nil {
				return err
			}
			cfg.kernels = append(cfg.kernels, t)
		}
	}
	if len(cfg.kernels) == 0 && !cfg.host {
		return errors.New("nothing to run: no -kernels and no -host")
	}
	if cfg.timeout < 15*time.Minute {
		return errors.New("-timeout must be at least 15m")
	}
	if os.Geteuid() != 0 {
		return errors.New("run as root: the suite loads BPF programs (and apt-get downloads the kernels)")
	}
	return runAll(ctx, &cfg)
}

// guestTools are the commands the suite runs, with their Debian packages;
// selftest marks those the self-test needs too (the scenarios' namespace).
var guestTools = []struct {
	name, pkg string
	selftest  bool
}{
	{"ip", "iproute2", true}, {"nstat", "iproute2", true}, {"sysctl", "procps", true}, {"setpriv", "util-linux", false},
	{"prometheus", "prometheus", false}, {"promtool", "prometheus", false},
}

// guestToolsFor are the names of guestTools a guest needs: all of them
// with the suite, the self-test's only without.
func guestToolsFor(suite bool) []string {
	var names []string
	for _, t := range guestTools {
		if suite || t.selftest {
			names = append(names, t.name)
		}
	}
	return names
}

// toolPackage is the Debian package of a guest tool.
func toolPackage(name string) string {
	for _, t := range guestTools {
		if t.name == name {
			return t.pkg
		}
	}
	return ""
}

func runAll(ctx context.Context, cfg *config) error {
	for _, d := range []string{"build", "results"} {
		if err := os.MkdirAll(filepath.Join(cfg.cache, d), 0o755); err != nil {
			return err
		}
	}
	builds := map[string]*binaries{} // by GOARCH
	binariesFor := func(arch string) (*binaries, error) {
		if b := builds[arch]; b != nil {
			return b, nil
		}
		dir := filepath.Join(cfg.cache, "build")
		if arch != vmtest.HostArch {
			dir = filepath.Join(dir, arch)
		}
		t0 := time.Now()
		b, err := build(ctx, dir, arch)
		if err != nil {
			return nil, err
		}
		logf("built the suite and the tracer (static, %s) in %v", arch, since(t0))
		builds[arch] = b
		return b, nil
	}

	var cols []testmatrix.Column
	for _, t := range cfg.kernels {
		b, err := binariesFor(t.Arch.Name)
		if err != nil {
			return err
		}
		col, err := runKernel(ctx, cfg, b, t)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			col = &testmatrix.Column{Name: t.Name(), Error: err.Error()}
			logf("%s: %v", t.Name(), err)
		}
		cols = append(cols, *col)
	}
	if cfg.host {
		b, err := binariesFor(vmtest.HostArch)
		if err != nil {
			return err
		}
		col, err := runHost(ctx, cfg, b)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			col = &testmatrix.Column{Name: "host", Error: err.Error()}
		}
		cols = append(cols, *col)
	}
	return printMatrix(cols, cfg.out)
}

// binaries are the statically built programs that go into the guest.
type binaries struct {
	suite, tracer string
	repo          string // the module's root
}

// build builds the suite and the tracer, static, for the architecture arch
// (a GOARCH) into dir.
func build(ctx context.Context, dir, arch string) (*binaries, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	root, err := output(ctx, "", nil, "go", "list", "-m", "-f", "{{.Dir}}")
	if err != nil {
		return nil, fmt.Errorf("find the module root: %w", err)
	}
	b := &binaries{suite: filepath.Join(dir, "e2e.test"), tracer: filepath.Join(dir, "tcpclose-trace"),
		repo: strings.TrimSpace(string(root))}
	env := []string{"CGO_ENABLED=0", "GOARCH=" + arch}
	if _, err := output(ctx, b.repo, env, "go", "test", "-c", "-o", b.suite, "./e2e"); err != nil {
		return nil, fmt.Errorf("build the e2e suite: %w", err)
	}
	if _, err := output(ctx, b.repo, env, "go", "build", "-o", b.tracer, "./cmd/tcpclose-trace"); err != nil {
		return nil, fmt.Errorf("build the tracer: %w", err)
	}
	for _, p := range []*string{&b.suite, &b.tracer} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// guestTimeScale stretches the scenarios' time limits in the guest, which
// runs them about ten times slower than the host (software emulation).
const guestTimeScale = 10

// Paths inside the guest.
const (
	guestSuiteDir = "/src/e2e" // the suite reads ../deploy/...
	guestTracer   = "/usr/local/bin/tcpclose-trace"
)

// selftestLimit bounds the self-test after the suite (it takes about 6 s on
// the host, a few minutes under emulation); selftestReserve is what the
// suite leaves of -timeout for it and for booting.
const (
	selftestLimit   = 8 * time.Minute
	selftestReserve = selftestLimit + 3*time.Minute
)

// suiteArgs are the test binary's flags, in the guest and on the host.
func suiteArgs(cfg *config) []string {
	// The suite's own timeout fires first, so a hang ends with a stack
	// trace, the tests that finished are still reported, and the self-test
	// still runs.
	args := []string{"-test.v=test2json", "-test.count=1", "-test.timeout=" + (cfg.timeout - selftestReserve).String()}
	if cfg.run != "" {
		args = append(args, "-test.run="+cfg.run)
	}
	return args
}

// guestPackages are the Debian packages of the tools (guestToolsFor) and
// busybox-static, once each: a foreign guest's userland.
func guestPackages(suite bool) []string {
	pkgs := []string{"busybox-static"}
	for _, name := range guestToolsFor(suite) {
		if p := toolPackage(name); !slices.Contains(pkgs, p) {
			pkgs = append(pkgs, p)
		}
	}
	return pkgs
}

// guestUserland returns the initramfs's busybox and programs: the host's
// for a guest of the host's architecture, otherwise the userland tree of
// the target's architecture (FetchUserland).
func guestUserland(ctx context.Context, cfg *config, t vmtest.Target) (f *vmtest.Initramfs, err error) {
	f = &vmtest.Initramfs{}
	tools := guestToolsFor(cfg.suite)
	if t.Foreign() {
		if f.Userland, err = vmtest.FetchUserland(ctx, cfg.cache, t, guestPackages(cfg.suite)); err != nil {
			return nil, err
		}
		f.Busybox = filepath.Join(f.Userland, "bin", "busybox")
		for _, name := range tools {
			if _, err := userlandTool(f.Userland, name); err != nil {
				return nil, fmt.Errorf("%s: %w (Debian package %s, %s)", t.Name(), err, toolPackage(name), t.Arch.Name)
			}
		}
		return f, nil
	}
	if f.Busybox, err = exec.LookPath("busybox"); err != nil {
		return nil, errors.New("busybox not found (Debian package busybox-static)")
	}
	if o, _ := exec.CommandContext(ctx, "ldd", f.Busybox).CombinedOutput(); !strings.Contains(string(o), "not a dynamic executable") {
		return nil, fmt.Errorf("%s is not static: install Debian's busybox-static", f.Busybox)
	}
	for _, name := range tools {
		p, err := lookTool(name)
		if err != nil {
			return nil, fmt.Errorf("%s not found (Debian package %s)", name, toolPackage(name))
		}
		f.Programs = append(f.Programs, p)
	}
	return f, nil
}

// userlandTool finds a command in a userland tree.
func userlandTool(root, name string) (string, error) {
	for _, d := range []string{"usr/sbin", "usr/bin", "sbin", "bin"} {
		p := filepath.Join(root, d, name)
		if _, err := os.Lstat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not in the guest's packages", name)
}

func buildInitramfs(ctx context.Context, cfg *config, b *binaries, k *vmtest.Kernel, t vmtest.Target, out string) error {
	f, err := guestUserland(ctx, cfg, t)
	if err != nil {
		return err
	}
	files := map[string]string{
		strings.TrimPrefix(guestSuiteDir, "/") + "/e2e.test": b.suite,
		strings.TrimPrefix(guestTracer, "/"):                 b.tracer,
	}
	rules, err := filepath.Glob(filepath.Join(b.repo, "deploy", "prometheus", "*.yml"))
	if err != nil {
		return err
	}
	for _, r := range rules {
		files["src/deploy/prometheus/"+filepath.Base(r)] = r
	}
	var modules []string
	for _, m := range k.Modules {
		guest := "/lib/modules/" + filepath.Base(m)
		files[guest[1:]] = m
		modules = append(modules, guest)
	}
	f.Applets = []string{"sh", "mount", "mkdir", "cat", "echo", "uname", "poweroff", "reboot", "sleep", "ls", "dmesg", "insmod", "timeout"}
	f.Files = files
	var args []string
	if cfg.suite {
		args = suiteArgs(cfg)
	}
	f.Init = guestInit(modules, t.Arch.Output, args)
	tree := out + ".d"
	if err := os.RemoveAll(tree); err != nil {
		return err
	}
	defer os.RemoveAll(tree)
	return f.Build(ctx, tree, out)
}

// guestInit is the guest's /init for these modules, output device and
// suite flags; no flags: no suite, only the self-test.
func guestInit(modules []string, out string, args []string) string {
	suite := ": no suite, only the selftest"
	if len(args) > 0 {
		var quoted []string
		for _, a := range args {
			quoted = append(quoted, shellQuote(a))
		}
		suite = fmt.Sprintf("cd %s\nTCPCLOSE_TRACE_BIN=%s TCPCLOSE_REQUIRE_TOOLS=1 ./e2e.test %s >$out 2>&1",
			guestSuiteDir, guestTracer, strings.Join(quoted, " "))
	}
	return fmt.Sprintf(initScript, strings.Join(modules, " "), guestTimeScale, out, suite,
		int(selftestLimit.Seconds()), guestTracer)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// lookTool finds a command also where root's PATH lacks the sbin directories.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return filepath.Abs(p)
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

// initScript is the guest's /init: mount what the suite needs, bring
// loopback up, run the suite with its output on the second serial port
// between markers, then `tcpclose-trace selftest -o json` with its report
// between markers of its own (its progress goes to the console), power off.
// Arguments: modules, time scale (for the suite and the self-test), the
// output device, the suite's commands, the self-test's limit in seconds,
// tracer.
const initScript = `#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for m in %s; do insmod $m || echo "insmod $m failed"; done
ip link set lo up
export TCPCLOSE_TIME_SCALE=%d
out=%s
echo "VMTEST-BEGIN $(uname -r)" >$out
%s
echo "VMTEST-EXIT $?" >$out
echo "VMTEST-SELFTEST-BEGIN" >$out
timeout %d %s selftest -o json >$out
echo "VMTEST-SELFTEST-EXIT $?" >$out
poweroff -f
sleep 5
reboot -f
`

// runKernel boots one kernel and returns its column.
func runKernel(ctx context.Context, cfg *config, b *binaries, t vmtest.Target) (*testmatrix.Column, error) {
	series := t.Name()
	t0 := time.Now()
	k, err := vmtest.FetchKernel(ctx, cfg.cache, t)
	if err != nil {
		return nil, err
	}
	logf("%s: %s (vmlinuz and modules ready in %v)", series, k.Package, since(t0))
	t0 = time.Now()
	initrd := filepath.Join(cfg.cache, "build", "initramfs-"+series+".cpio")
	if err := buildInitramfs(ctx, cfg, b, k, t, initrd); err != nil {
		return nil, err
	}
	st, err := os.Stat(initrd)
	if err != nil {
		return nil, err
	}
	logf("%s: built the initramfs (%d MiB) in %v", series, st.Size()>>20, since(t0))
	raw := filepath.Join(cfg.cache, "results", series+".log")
	f, err := os.Create(raw)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := &vmtest.Machine{Arch: t.Arch, Kernel: k.Vmlinuz, Initramfs: initrd, Memory: cfg.memory, CPUs: cfg.cpus,
		Console: filepath.Join(cfg.cache, "results", series+".console"), Timeout: cfg.timeout}
	logf("%s: booting under %s (TCG, %d CPUs, %s); console log in %s", series, t.Arch.QEMU, cfg.cpus, cfg.memory, m.Console)
	o, runErr := m.Run(ctx, io.MultiWriter(f, liveOutput{os.Stdout}))
	if o != nil {
		logf("%s: guest %s: boot %v, suite %v, exit %d", series, o.Release, o.Boot.Round(100*time.Millisecond),
			o.Suite.Round(100*time.Millisecond), o.ExitCode)
	}
	col := &testmatrix.Column{Name: series}
	if cfg.suite {
		if col, err = column(ctx, series, raw); err != nil {
			return nil, err
		}
	}
	if o != nil {
		col.Kernel, col.Seconds = o.Release, o.Suite.Seconds()
	}
	if runErr != nil {
		col.Error = runErr.Error()
	} else if o.ExitCode != 0 && !col.Failed() {
		col.Error = fmt.Sprintf("suite exited with status %d", o.ExitCode)
	}
	if o != nil {
		col.AddSelftest(o.Selftest, o.SelftestExit)
		if err := os.WriteFile(filepath.Join(cfg.cache, "results", series+".selftest.json"), []byte(o.Selftest), 0o644); err != nil {
			return nil, err
		}
	} else {
		col.AddSelftest("", -1)
	}
	logSelftest(col)
	return col, col.Save(filepath.Join(cfg.cache, "results"))
}

// runHost runs the same static suite on the host's kernel, then the
// self-test.
func runHost(ctx context.Context, cfg *config, b *binaries) (*testmatrix.Column, error) {
	raw := filepath.Join(cfg.cache, "results", "host.log")
	f, err := os.Create(raw)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.suite, suiteArgs(cfg)...)
	cmd.Dir = filepath.Join(b.repo, "e2e")
	cmd.Env = append(os.Environ(), "TCPCLOSE_TRACE_BIN="+b.tracer, "TCPCLOSE_REQUIRE_TOOLS=1")
	cmd.Stdout = io.MultiWriter(f, liveOutput{os.Stdout})
	cmd.Stderr = cmd.Stdout
	logf("host: running the suite")
	t0 := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(t0)
	logf("host: suite %v (%v)", elapsed.Round(100*time.Millisecond), runErr)
	col, err := column(ctx, "host", raw)
	if err != nil {
		return nil, err
	}
	rel, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return nil, err
	}
	col.Kernel, col.Seconds = strings.TrimSpace(string(rel)), elapsed.Seconds()
	if runErr != nil && !col.Failed() {
		col.Error = runErr.Error()
	}
	out, exit, err := hostSelftest(ctx, cfg, b)
	if err != nil {
		return nil, err
	}
	col.AddSelftest(out, exit)
	logSelftest(col)
	return col, col.Save(filepath.Join(cfg.cache, "results"))
}

// hostSelftest runs `tcpclose-trace selftest -o json` on the host and
// returns its output and exit status (-1 if it did not end in time); its
// progress goes to results/host.selftest.log.
func hostSelftest(ctx context.Context, cfg *config, b *binaries) (string, int, error) {
	log, err := os.Create(filepath.Join(cfg.cache, "results", "host.selftest.log"))
	if err != nil {
		return "", 0, err
	}
	defer log.Close()
	ctx, cancel := context.WithTimeout(ctx, selftestLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.tracer, "selftest", "-o", "json")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) } // it removes its namespace
	cmd.WaitDelay = 30 * time.Second
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, log
	logf("host: running the selftest")
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return stdout.String(), -1, nil
	case err == nil:
		return stdout.String(), 0, nil
	case errors.As(err, &exit):
		return stdout.String(), exit.ExitCode(), nil
	}
	return "", 0, fmt.Errorf("run the selftest: %w", err)
}

// logSelftest says how the self-test went.
func logSelftest(col *testmatrix.Column) {
	switch {
	case col.SelftestError != "":
		logf("%s: %s", col.Name, col.SelftestError)
	case col.Selftest != nil:
		logf("%s: selftest %s (%s)", col.Name, col.Selftest.Verdict, selfreport.HookSummary(col.Selftest.Hooks))
	}
}

// column converts a raw `-test.v=test2json` log with go tool test2json and
// parses it.
func column(ctx context.Context, name, raw string) (*testmatrix.Column, error) {
	in, err := os.Open(raw)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	cmd := exec.CommandContext(ctx, "go", "tool", "test2json", "-t", "-p", "e2e")
	cmd.Stdin = in
	js, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool test2json: %w", err)
	}
	if err := os.WriteFile(strings.TrimSuffix(raw, ".log")+".events.json", js, 0o644); err != nil {
		return nil, err
	}
	results, pkg, err := testmatrix.Parse(strings.NewReader(string(js)))
	if err != nil {
		return nil, err
	}
	col := &testmatrix.Column{Name: name, Results: results}
	if pkg == "" {
		col.Error = "the suite's output ended before its result"
	}
	return col, nil
}

func matrixCmd(files []string) error {
	if len(files) == 0 {
		return errors.New("matrix: name result files (e.g. .cache/vmtest/results/6.1.json)")
	}
	var cols []testmatrix.Column
	for _, f := range files {
		c, err := testmatrix.ReadColumn(f)
		if err != nil {
			return err
		}
		cols = append(cols, *c)
	}
	return printMatrix(cols, "")
}

func printMatrix(cols []testmatrix.Column, file string) error {
	var sb strings.Builder
	if err := testmatrix.Markdown(&sb, cols); err != nil {
		return err
	}
	fmt.Print("\n" + sb.String())
	if file != "" {
		if err := os.WriteFile(file, []byte(sb.String()), 0o644); err != nil {
			return fmt.Errorf("write matrix: %w", err)
		}
	}
	for i := range cols {
		if cols[i].Failed() {
			return errFailed
		}
	}
	return nil
}

// liveOutput shows the suite's output as it comes, without test2json's
// framing bytes.
type liveOutput struct{ w io.Writer }

func (l liveOutput) Write(p []byte) (int, error) {
	if _, err := l.w.Write([]byte(strings.ReplaceAll(string(p), "\x16", ""))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func output(ctx context.Context, dir string, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func since(t time.Time) time.Duration { return time.Since(t).Round(100 * time.Millisecond) }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmtest: "+format+"\n", args...)
}

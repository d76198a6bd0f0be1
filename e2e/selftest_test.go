package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/expect"
	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
	"github.com/tcpclose-trace/tcpclose-trace/internal/selftest"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/syncbuf"
)

// selftestLimit bounds one self-test run (minutes under emulation).
const selftestLimit = 5 * time.Minute

// runSelftest runs `bin selftest args...` and returns its exit code,
// stdout, stderr and the BPF programs it was seen holding.
func runSelftest(t *testing.T, bin string, args ...string) (int, string, string, *heldPrograms) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), selftestLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"selftest"}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	progs, err := runWatched(t, cmd, 50*time.Millisecond)
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String(), progs
	case errors.As(err, &exit) && ctx.Err() == nil:
		return exit.ExitCode(), stdout.String(), stderr.String(), progs
	}
	t.Fatalf("selftest: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	return 0, "", "", nil
}

// rowCells returns the cells of a report row, by the row's name.
func rowCells(t *testing.T, out, row string) []string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(row) + `((?:\s+(?:ok|FAIL|n/a))+)\s*$`)
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no row %q in the report:\n%s", row, out)
	}
	return strings.Fields(m[1])
}

// namespaceGone asserts that the self-test's namespace no longer exists.
func namespaceGone(t *testing.T, out string) {
	t.Helper()
	m := regexp.MustCompile(`network namespace (tct-[0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the self-test did not name its namespace:\n%s", out)
	}
	if _, err := os.Stat("/run/netns/" + m[1]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s left behind (stat: %v)", m[1], err)
	}
}

// kernelResets reads which reset reasons the running kernel names.
func kernelResets(t *testing.T) expect.Kernel {
	t.Helper()
	return expect.FromReasons(kernelSupport(t).Reasons)
}

// TestSelftest runs `tcpclose-trace selftest` as a user would on a new
// host: on a kernel the tracer supports it must report every detection
// working for both families, exit 0, and leave nothing behind. Then it runs
// `selftest -o json`, which must print one object only, decoding strictly,
// with the table's status in every cell.
func TestSelftest(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	code, out, errOut, progs := runSelftest(t, bin)
	if code != 0 {
		t.Errorf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	resets := kernelResets(t)
	noStorage := newNamespace(t).Supports("no_storage")
	if kernelSupport(t).Compat {
		noStorage = errors.New(selftest.WhyNoStorageCompat)
	}
	table := map[string][]string{}
	for _, row := range selftest.Rows() {
		want := []string{"ok", "ok"}
		if row == selftest.RowReasons && !resets.ResetReasons || row == expect.RowNoStorage && noStorage != nil {
			want = []string{"n/a", "n/a"}
		}
		table[row] = rowCells(t, out, row)
		if got := table[row]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %q: %v, want %v", row, got, want)
		}
	}
	if !strings.Contains(out, "PASS: every detection this kernel supports works") {
		t.Errorf("no PASS verdict:\n%s", out)
	}
	// The kernel line names the hooks the tracer uses here.
	support := kernelSupport(t)
	if want := "\nkernel: " + selfreport.HookList(support.Hooks) + "; "; !strings.Contains(out, want) {
		t.Errorf("report lacks %q:\n%s", want, out)
	}
	namespaceGone(t, out)
	progs.requireLoaded(t)
	progs.checkGone(t)

	t.Run("json", func(t *testing.T) {
		code, out, errOut, progs := runSelftest(t, bin, "-o", "json")
		if code != 0 {
			t.Errorf("exit code %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		rep, err := selfreport.Decode(strings.NewReader(out))
		if err != nil {
			t.Fatalf("%v\nstdout:\n%s", err, out)
		}
		if rep.Kernel != selftest.Release() || rep.Verdict != selfreport.Pass || rep.Error != "" {
			t.Errorf("kernel %q, verdict %q, error %q; want %q, pass, none", rep.Kernel, rep.Verdict, rep.Error, selftest.Release())
		}
		if !slices.Equal(rep.Hooks, support.Hooks) || !slices.Equal(rep.Lost, support.Lost) {
			t.Errorf("hooks %q, lost %q; want %q, %q", rep.Hooks, rep.Lost, support.Hooks, support.Lost)
		}
		if rep.ResetReasons != resets.ResetReasons || rep.ActiveResetReasons != resets.ActiveResetReasons {
			t.Errorf("reset reasons %v, active %v; the kernel: %s", rep.ResetReasons, rep.ActiveResetReasons, resets)
		}
		if !slices.Equal(rep.Families, []string{"ipv4", "ipv6"}) || len(rep.Rows) != len(selftest.Rows()) {
			t.Fatalf("families %v, %d rows; want ipv4, ipv6 and %d rows", rep.Families, len(rep.Rows), len(selftest.Rows()))
		}
		for i, row := range selftest.Rows() {
			if rep.Rows[i].Detection != row {
				t.Errorf("row %d is %q, want %q", i, rep.Rows[i].Detection, row)
			}
			for j, f := range rep.Families {
				if got, want := rep.Status(row, f), table[row][j]; got != want {
					t.Errorf("%s/%s: JSON %q, table %q", row, f, got, want)
				}
			}
		}
		if rep.Namespace == "" {
			t.Error("no namespace in the JSON report")
		} else if _, err := os.Stat("/run/netns/" + rep.Namespace); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left behind (stat: %v)", rep.Namespace, err)
		}
		progs.requireLoaded(t)
		progs.checkGone(t)
	})
}

// TestSelftestBrokenDetection makes one detection fail for real (its events
// are discarded before the check, as if the kernel never reported them):
// the self-test must name that row, keep the others ok, and fail. It runs
// the self-test in-process: the fault is injected through its options,
// which the shipped binary does not expose (cmd's TestSelftestFailedDetection
// covers how the command reports a failed detection).
func TestSelftestBrokenDetection(t *testing.T) {
	requireHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), selftestLimit)
	defer cancel()
	rep, err := selftest.Run(ctx, selftest.Options{Families: []string{"ipv4"}, Drop: collector.KindUnreadClose})
	if err != nil {
		t.Fatalf("selftest: %v", err)
	}
	var b strings.Builder
	if err := rep.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if rep.OK() {
		t.Errorf("the report passes with unread_close events discarded:\n%s", out)
	}
	for row, want := range map[string]string{
		expect.RowUnread:     "FAIL",
		expect.RowThread:     "FAIL", // a worker thread's close is an unread_close
		selftest.RowCounters: "FAIL", // unread_close events no longer match TCPAbortOnClose
		expect.RowGraceful:   "ok",
		expect.RowAbort:      "ok",
	} {
		if got := rowCells(t, out, row); len(got) != 1 || got[0] != want {
			t.Errorf("row %q: %v, want [%s]", row, got, want)
		}
	}
	// no_storage's close is an unread_close too, where the kernel can run
	// it (net.core.optmem_max per namespace).
	failed := 3
	switch got := rowCells(t, out, expect.RowNoStorage); {
	case len(got) == 1 && got[0] == "FAIL":
		failed++
	case len(got) == 1 && got[0] == "n/a":
	default:
		t.Errorf("row %q: %v, want [FAIL] or [n/a]", expect.RowNoStorage, got)
	}
	for _, want := range []string{"no unread_close event (of tct-closer)", "TcpExtTCPAbortOnClose +1",
		fmt.Sprintf("FAIL: %d of %d checks", failed, len(selftest.Rows()))} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if rep.Namespace == "" {
		t.Error("no namespace in the report")
	} else if _, err := os.Stat("/run/netns/" + rep.Namespace); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s left behind (stat: %v)", rep.Namespace, err)
	}
}

// TestSelftestInterrupted stops the self-test with SIGTERM in the middle of
// a scenario: it must exit non-zero within seconds and remove its namespace
// and programs.
func TestSelftestInterrupted(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	cmd := exec.Command(bin, "selftest")
	var stdout syncbuf.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	progs := watchPrograms(t, cmd)
	waited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		waited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	var ns, all string
	timeout := time.After(selftestLimit)
	for ns == "" || !strings.Contains(all, "ipv4 undrained_fin_wait") {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("selftest ended before the signal:\n%s", all)
			}
			all += l + "\n"
			if n, found := strings.CutPrefix(l, "selftest: created network namespace "); found {
				ns = n
			}
		case <-timeout:
			t.Fatalf("selftest did not reach undrained_fin_wait:\n%s", all)
		}
	}
	progs.read() // in the middle of a scenario: every program is loaded
	progs.requireLoaded(t)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() {
		for l := range lines {
			all += l + "\n"
		}
	}()
	select {
	case err := <-waited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("exit after SIGTERM: %v, want status 1", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("selftest still running 30 s after SIGTERM")
	}
	if _, err := os.Stat("/run/netns/" + ns); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s left behind after SIGTERM (stat: %v)", ns, err)
	}
	progs.checkGone(t)
	if !strings.Contains(stdout.String(), "DETECTION") {
		t.Errorf("no report after SIGTERM:\n%s", stdout.String())
	}
}

// publicCopy copies the binary into a directory any user may enter, for
// runs as another user.
func publicCopy(t *testing.T, bin string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tct-public-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "tcpclose-trace")
	if err := os.WriteFile(pub, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestSelftestUnprivileged runs the self-test without what it needs, as
// the nobody user and as root without CAP_NET_ADMIN: one line on stderr
// that says so (and nothing about a namespace created), exit status 1, no
// report of failures.
func TestSelftestUnprivileged(t *testing.T) {
	requireHost(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("skipped: setpriv (util-linux) is not installed")
	}
	bin := publicCopy(t, buildCLI(t))
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"nobody", []string{"--reuid=65534", "--regid=65534", "--clear-groups"}, "running as uid 65534 without CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_DAC_OVERRIDE"},
		{"nobody json", []string{"--reuid=65534", "--regid=65534", "--clear-groups"}, "running as uid 65534 without"},
		{"root without CAP_NET_ADMIN", []string{"--bounding-set=-net_admin"}, "running as root without CAP_NET_ADMIN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append(tt.args, bin, "selftest")
			if strings.HasSuffix(tt.name, "json") {
				args = append(args, "-o", "json")
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "setpriv", args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty:\n%s", stdout.String())
			}
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "tcpclose-trace: selftest needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN") ||
				!strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr = %q, want one line saying it needs root, %q", stderr.String(), tt.want)
			}
		})
	}
}

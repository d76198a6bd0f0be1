package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
	"github.com/tcpclose-trace/tcpclose-trace/output"
)

// stackTracer runs the built command with --stacks in NDJSON inside a
// namespace filter, and collects its unread_close records.
type stackTracer struct {
	cmd     *exec.Cmd
	stderr  strings.Builder
	records chan output.Record
}

func startStackTracer(t *testing.T, ns *scenario.Namespace) *stackTracer {
	t.Helper()
	bin := buildCLI(t)
	ready := filepath.Join(t.TempDir(), "ready")
	st := &stackTracer{records: make(chan output.Record, 64)}
	st.cmd = exec.Command(bin, "-o", "json", "--stacks", "--netns", strconv.FormatUint(uint64(ns.Inode), 10),
		"--ready-file", ready, "--duration", "120s")
	stdout, err := st.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	st.cmd.Stderr = &st.stderr
	if err := st.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if st.cmd.ProcessState == nil {
			_ = st.cmd.Process.Signal(syscall.SIGINT)
			_ = st.cmd.Wait()
		}
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec output.Record
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Kind == "unread_close" {
				st.records <- rec
			}
		}
		close(st.records)
	}()
	waitForFile(t, ready, st.cmd)
	return st
}

// next returns the next unread_close of pid.
func (st *stackTracer) next(t *testing.T, pid int) output.Record {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case rec, ok := <-st.records:
			if !ok {
				t.Fatalf("tracer output ended; stderr: %s", st.stderr.String())
			}
			if int(rec.PID) == pid {
				return rec
			}
		case <-timeout:
			t.Fatalf("no unread_close of pid %d within 10 s; stderr: %s", pid, st.stderr.String())
		}
	}
}

// TestStacksGoCallSite: the Go function that closed with unread data is
// named in the event's stack, with its file and the line of the close.
func TestStacksGoCallSite(t *testing.T) {
	requireHost(t)
	ns := newNamespace(t)
	st := startStackTracer(t, ns)
	r, err := scenario.Run(ns, "call_site", "ipv4")
	if err != nil {
		t.Fatal(err)
	}
	rec := st.next(t, r.Closer.PID)
	t.Logf("stack: %+v", rec.Stack)
	fn, file, decl := scenario.CallSite()
	for _, f := range rec.Stack {
		if f.Func == fn {
			if f.File != file || f.Line <= decl || f.Line > decl+3 {
				t.Errorf("frame %+v, want %s:%d-%d", f, file, decl+1, decl+3)
			}
			return
		}
	}
	t.Errorf("stack %+v lacks %s", rec.Stack, fn)
}

// closerC closes an accepted loopback connection with 100 unread bytes
// from close_without_draining (through do_close: libc's close keeps no
// frame pointer, so its caller's frame is the first the kernel can walk
// past); with an argument it exits right after the close.
const closerC = `
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef VARIANT
#define VARIANT 0
#endif

/* A variant is another file with its own build id. */
volatile int variant = VARIANT;

__attribute__((noinline)) int do_close(int fd) { return close(fd); }
__attribute__((noinline)) int close_without_draining(int fd) { return do_close(fd) + 0; }

int main(int argc, char **argv) {
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t n = sizeof a;
	char buf[100] = {0};
	int l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &n))
		return 1;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (void *)&a, sizeof a))
		return 2;
	int s = accept(l, 0, 0);
	if (s < 0 || write(c, buf, sizeof buf) != sizeof buf)
		return 3;
	usleep(100000);
	close_without_draining(s);
	if (argc > 1)
		_exit(0);
	usleep(300000);
	return 0;
}
`

// TestStacksCProgram builds closerC with gcc, with frame pointers: its
// function is named; stripped: module, offset and build id, no name; and
// exiting right after the close: the frames keep their build id and offset.
func TestStacksCProgram(t *testing.T) {
	requireHost(t)
	if _, err := exec.LookPath("gcc"); err != nil && os.Getenv("TCPCLOSE_TRACE_BIN") != "" {
		// The kernel-matrix guest runs prebuilt binaries and has no compiler;
		// the kernel's side of stacks is proven there by TestStacksGoCallSite.
		t.Skip("skipped: no gcc where the suite runs prebuilt binaries (the kernel-matrix guest)")
	}
	gcc := testenv.RequireTool(t, "gcc", "gcc")
	strip := testenv.RequireTool(t, "strip", "binutils")
	dir := t.TempDir()
	src := filepath.Join(dir, "closer.c")
	if err := os.WriteFile(src, []byte(closerC), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "closer")
	if out, err := exec.Command(gcc, "-O1", "-fno-omit-frame-pointer", "-Wl,--build-id", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	// Stripped copies of other variants: build ids no earlier run showed.
	strippedVariant := func(v string) string {
		t.Helper()
		unstripped := filepath.Join(dir, "closer-"+v)
		if out, err := exec.Command(gcc, "-O1", "-fno-omit-frame-pointer", "-Wl,--build-id", "-DVARIANT="+v, "-o", unstripped, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
		stripped := unstripped + "-stripped"
		if out, err := exec.Command(strip, "-o", stripped, unstripped).CombinedOutput(); err != nil {
			t.Fatalf("strip: %v\n%s", err, out)
		}
		return stripped
	}
	stripped, strippedExit := strippedVariant("1"), strippedVariant("2")
	ns := newNamespace(t)
	st := startStackTracer(t, ns)
	run := func(path string, args ...string) output.Record {
		t.Helper()
		cmd := ns.Command(context.Background(), path, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid // ip netns exec execs the program itself
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rec := st.next(t, pid)
		t.Logf("stack: %+v", rec.Stack)
		return rec
	}
	// frameOf returns the frame in the closer's file, and whether there is one.
	frameOf := func(rec output.Record, module string) (output.StackFrame, bool) {
		for _, f := range rec.Stack {
			if f.Module == module || f.Module == "" && f.BuildID != "" && !f.JIT {
				return f, true
			}
		}
		return output.StackFrame{}, false
	}

	t.Run("frame pointers", func(t *testing.T) {
		rec := run(bin)
		var names []string
		for _, f := range rec.Stack {
			names = append(names, f.Func)
		}
		if !strings.Contains(strings.Join(names, " "), "close_without_draining") || !strings.Contains(strings.Join(names, " "), "main") {
			t.Errorf("stack %+v: want close_without_draining and main named", rec.Stack)
		}
	})
	t.Run("stripped", func(t *testing.T) {
		rec := run(stripped)
		f, ok := frameOf(rec, stripped)
		if !ok || f.Func != "" || f.BuildID == "" || f.Offset == 0 {
			t.Errorf("stack %+v: want a frame of %s with build id and offset and no name", rec.Stack, stripped)
		}
	})
	t.Run("exits right after the close", func(t *testing.T) {
		rec := run(strippedExit, "exit")
		f, ok := frameOf(rec, strippedExit)
		if !ok || f.BuildID == "" || f.Offset == 0 {
			t.Errorf("stack %+v: want a frame with build id and offset", rec.Stack)
		}
	})
}

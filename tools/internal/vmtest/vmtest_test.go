package vmtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
)

// search is apt-cache search output as Debian 12 gives it.
const search = `linux-image-6.1.0-9-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-56-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-47-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud
linux-image-6.1.0-56-cloud-amd64-dbg - Debug symbols for linux-image-6.1.0-56-cloud-amd64
linux-image-6.12.117+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
linux-image-6.12.9+deb12-cloud-amd64-unsigned - Linux 6.12 for x86-64 cloud
linux-image-6.12.117+deb12-amd64-unsigned - Linux 6.12 for 64-bit PCs
`

func TestNewestPackage(t *testing.T) {
	tests := []struct {
		series, pkg, release, err string
	}{
		{series: "6.1", pkg: "linux-image-6.1.0-56-cloud-amd64-unsigned", release: "6.1.0-56-cloud-amd64"},
		{series: "6.12", pkg: "linux-image-6.12.117+deb12-cloud-amd64-unsigned", release: "6.12.117+deb12-cloud-amd64"},
		{series: "5.10", err: "no package linux-image-5.10"},
		{series: "6", err: "want MAJOR.MINOR"},
		{series: "6.1; rm", err: "want MAJOR.MINOR"},
	}
	for _, tt := range tests {
		t.Run(tt.series, func(t *testing.T) {
			pkg, rel, err := newestPackage([]byte(search), tt.series, "amd64")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || pkg != tt.pkg || rel != tt.release {
				t.Fatalf("got %q %q %v, want %q %q", pkg, rel, err, tt.pkg, tt.release)
			}
		})
	}
}

// searchBullseye is apt-cache search output from Debian 11's lists (OtherSuites).
const searchBullseye = `linux-image-5.10.0-30-cloud-amd64-unsigned - Linux 5.10 for x86-64 cloud
linux-image-5.10.0-32-cloud-amd64-unsigned - Linux 5.10 for x86-64 cloud
linux-image-5.10.0-32-cloud-amd64-dbg - Debug symbols for linux-image-5.10.0-32-cloud-amd64
`

func TestNewestPackageBullseye(t *testing.T) {
	if OtherSuites["5.10"] != "bullseye" {
		t.Fatalf("5.10 comes from %q, want bullseye", OtherSuites["5.10"])
	}
	pkg, rel, err := newestPackage([]byte(searchBullseye), "5.10", "amd64")
	if err != nil || pkg != "linux-image-5.10.0-32-cloud-amd64-unsigned" || rel != "5.10.0-32-cloud-amd64" {
		t.Fatalf("got %q %q %v", pkg, rel, err)
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"6.1.0-9", "6.1.0-10", -1},
		{"6.1.0-56", "6.1.0-47", 1},
		{"6.12.9+deb12", "6.12.117+deb12", -1},
		{"a", "a", 0},
		{"a1", "a1b", -1},
	}
	for _, tt := range tests {
		got := naturalCompare(tt.a, tt.b)
		if (got < 0) != (tt.want < 0) || (got > 0) != (tt.want > 0) {
			t.Errorf("naturalCompare(%q, %q) = %d, want sign of %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestLddLine(t *testing.T) {
	tests := []struct{ line, want string }{
		{"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f2565a17000)", "/lib/x86_64-linux-gnu/libc.so.6"},
		{"\t/lib64/ld-linux-x86-64.so.2 (0x00007f2565c0d000)", "/lib64/ld-linux-x86-64.so.2"},
		{"\tlinux-vdso.so.1 (0x00007fdf8d8dc000)", ""},
	}
	for _, tt := range tests {
		got := ""
		if m := lddLine.FindStringSubmatch(tt.line); m != nil {
			got = m[1]
		}
		if got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.line, got, tt.want)
		}
	}
}

// TestBuildInitramfs builds a small archive with a dynamic program and
// checks that cpio lists the program, its loader, the links and /init.
func TestBuildInitramfs(t *testing.T) {
	testenv.RequireTool(t, "cpio", "cpio")
	bb := testenv.RequireTool(t, "busybox", "busybox-static")
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	sh, _ = filepath.EvalSymlinks(sh)
	dir := t.TempDir()
	data := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(data, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &Initramfs{Busybox: bb, Applets: []string{"mount"}, Programs: []string{sh},
		Files: map[string]string{"src/data.txt": data}, Init: "#!/bin/sh\n"}
	out := filepath.Join(dir, "initramfs.cpio")
	if err := f.Build(context.Background(), filepath.Join(dir, "tree"), out); err != nil {
		t.Fatal(err)
	}
	list, err := exec.Command("sh", "-c", `cpio -t --quiet <"$1"`, "sh", out).Output()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, n := range strings.Fields(string(list)) {
		names[n] = true
	}
	for _, want := range []string{"init", "usr/bin/busybox", "usr/bin/mount", "bin", "lib64", "src/data.txt", "etc/passwd",
		strings.TrimPrefix(sh, "/")} {
		if !names[want] && !names["usr/"+want] {
			t.Errorf("archive lacks %s; has %v", want, names)
		}
	}
	libs, err := sharedLibraries(context.Background(), sh)
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) == 0 {
		t.Skip("skipped: sh is static here")
	}
	for _, l := range libs {
		real := strings.TrimPrefix(l, "/")
		for link, target := range mergedUsr {
			if strings.HasPrefix(real, link+"/") {
				real = target + strings.TrimPrefix(real, link)
			}
		}
		if !names[real] {
			t.Errorf("archive lacks library %s (as %s)", l, real)
		}
	}
}

func TestGuestOutput(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)
	report := `{"kernel":"6.1.0-56-cloud-amd64","verdict":"pass"}`
	tests := []struct {
		name    string
		lines   []string
		wantOut string
		want    Outcome
	}{
		{
			name: "suite and selftest",
			lines: []string{"[    1.2] early noise\r", "VMTEST-BEGIN 6.1.0-56-cloud-amd64\r", "=== RUN   TestA\r", "--- PASS: TestA\r",
				"VMTEST-EXIT 0\r", "stray line\r", "VMTEST-SELFTEST-BEGIN\r", report + "\r", "VMTEST-SELFTEST-EXIT 1\r", "after\r"},
			wantOut: "=== RUN   TestA\n--- PASS: TestA\n",
			want: Outcome{Release: "6.1.0-56-cloud-amd64", ExitCode: 0, Boot: time.Second, Suite: 2 * time.Second,
				Selftest: report + "\n", SelftestExit: 1},
		},
		{
			name:    "selftest never ended",
			lines:   []string{"VMTEST-BEGIN 6.12.117+deb12-cloud-amd64", "VMTEST-EXIT 3", "VMTEST-SELFTEST-BEGIN", `{"kern`},
			want:    Outcome{Release: "6.12.117+deb12-cloud-amd64", ExitCode: 3, Boot: time.Second, Suite: 2 * time.Second, Selftest: "{\"kern\n", SelftestExit: -1},
			wantOut: "",
		},
		{
			name:    "suite never ended",
			lines:   []string{"VMTEST-BEGIN 6.1.0-56-cloud-amd64", "panic: test timed out", "VMTEST-SELFTEST-BEGIN"},
			wantOut: "panic: test timed out\nVMTEST-SELFTEST-BEGIN\n",
			want:    Outcome{Release: "6.1.0-56-cloud-amd64", ExitCode: -1, Boot: time.Second, SelftestExit: -1},
		},
		{
			name:  "never began",
			lines: []string{"Kernel panic", "VMTEST-EXIT 0", "VMTEST-SELFTEST-BEGIN", "{}", "VMTEST-SELFTEST-EXIT 0"},
			want:  Outcome{ExitCode: -1, SelftestExit: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			g := newGuestOutput(&out, t0)
			for i, l := range tt.lines {
				// The begin marker comes at 1 s, the exit marker at 3 s.
				var now time.Time
				switch {
				case strings.HasPrefix(l, markBegin):
					now = t0.Add(time.Second)
				case strings.HasPrefix(l, markExit):
					now = t0.Add(3 * time.Second)
				default:
					now = t0.Add(time.Duration(i) * time.Millisecond)
				}
				if err := g.line(l, now); err != nil {
					t.Fatal(err)
				}
			}
			if got := *g.outcome(); got != tt.want {
				t.Errorf("outcome %+v, want %+v", got, tt.want)
			}
			if out.String() != tt.wantOut {
				t.Errorf("suite output %q, want %q", out.String(), tt.wantOut)
			}
		})
	}
}

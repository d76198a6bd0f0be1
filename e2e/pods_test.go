package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/syncbuf"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
	"github.com/tcpclose-trace/tcpclose-trace/kubepods"
	"github.com/tcpclose-trace/tcpclose-trace/kubepods/kubepodstest"
)

// podLayout is one way a node lays out a pod: the kubelet's cgroup driver
// and the container runtime's naming and state.
type podLayout struct {
	name   string
	family string
	// cgroup is the container's cgroup path for pod uid and container id.
	cgroup func(uid, id string) string
	// state writes the runtime's (or the kubelet's) record of the container
	// under the node directory dir.
	state func(dir, id string, m kubepods.Meta) error
	// named says which names the node's state gives.
	namesContainer bool
}

func systemdUID(uid string) string { return strings.ReplaceAll(uid, "-", "_") }

var podLayouts = []podLayout{
	{"systemd+containerd", "ipv4",
		func(uid, id string) string {
			return "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + systemdUID(uid) +
				".slice/cri-containerd-" + id + ".scope"
		},
		func(dir, id string, m kubepods.Meta) error {
			return kubepodstest.WriteContainerdBundle(filepath.Join(dir, "containerd"), id, m, false)
		}, true},
	{"cgroupfs+cri-o", "ipv6",
		func(uid, id string) string { return "kubepods/besteffort/pod" + uid + "/crio-" + id },
		func(dir, id string, m kubepods.Meta) error {
			return kubepodstest.WriteCRIOBundle(filepath.Join(dir, "crio"), id, m, false)
		}, true},
	{"cgroupfs+docker", "ipv4",
		func(uid, id string) string { return "kubepods/pod" + uid + "/" + id },
		func(dir, id string, m kubepods.Meta) error {
			return kubepodstest.WriteDockerConfig(filepath.Join(dir, "docker"), id, m, false)
		}, true},
	{"systemd+crio, kubelet names only", "ipv6",
		func(uid, id string) string {
			return "kubepods.slice/kubepods-pod" + systemdUID(uid) + ".slice/crio-" + id + ".scope"
		},
		func(dir, _ string, m kubepods.Meta) error {
			return kubepodstest.WriteKubeletPod(filepath.Join(dir, "kubelet"), m, "10.244.3.9")
		}, false},
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// podCase is a layout set up on this host: a real cgroup and node state.
type podCase struct {
	podLayout
	meta   kubepods.Meta
	id     string
	cgroup string // absolute path of the container's cgroup
	closer int    // pid of the scenario's closer, once run
	peer   int
}

// makeCgroup creates dir and any missing parents under root, and removes
// what it created when t ends (the processes in it have exited by then).
func makeCgroup(t *testing.T, root, rel string) string {
	t.Helper()
	path := root
	for _, part := range strings.Split(rel, "/") {
		path = filepath.Join(path, part)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatalf("create cgroup: %v", err)
		}
		p := path
		t.Cleanup(func() {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) { // a test may remove it first
				t.Errorf("remove cgroup: %v", err)
			}
		})
	}
	return path
}

// setUpPods builds every layout on this host; node state goes under dir.
func setUpPods(t *testing.T, root, dir string) []*podCase {
	t.Helper()
	var cases []*podCase
	for i, l := range podLayouts {
		u := randomHex(t, 16)
		uid := u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:]
		c := &podCase{podLayout: l, id: randomHex(t, 32),
			meta: kubepods.Meta{Namespace: fmt.Sprintf("team-%d", i), Pod: fmt.Sprintf("web-%d-7f9c4", i), PodUID: uid, Container: "app"}}
		if err := l.state(dir, c.id, c.meta); err != nil {
			t.Fatal(err)
		}
		c.cgroup = makeCgroup(t, root, l.cgroup(uid, c.id))
		cases = append(cases, c)
	}
	return cases
}

// runPods runs unread_close once per case, its closer in the case's cgroup,
// and returns the namespace's kernel counter deltas.
func runPods(t *testing.T, ns *scenario.Namespace, cases []*podCase) scenario.Counters {
	t.Helper()
	before, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		ns.CloserCgroup = c.cgroup
		r, err := scenario.Run(ns, "unread_close", c.family)
		ns.CloserCgroup = ""
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		c.closer, c.peer = r.Closer.PID, r.Peer.PID
	}
	after, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return after.Delta(before)
}

// checkPodRecords asserts that each case's closer has exactly one
// unread_close record, named with its pod, and that the peer (a host
// process) has no pod in any record.
func checkPodRecords(t *testing.T, cases []*podCase, recs []map[string]any, mib scenario.Counters) {
	t.Helper()
	unread := 0
	for _, rec := range recs {
		if rec["kind"] == "unread_close" {
			unread++
		}
	}
	if uint64(unread) != mib["TcpExtTCPAbortOnClose"] || unread != len(cases) {
		t.Errorf("%d unread_close records, TcpExtTCPAbortOnClose %d, %d pods", unread, mib["TcpExtTCPAbortOnClose"], len(cases))
	}
	for _, c := range cases {
		want := map[string]any{"kind": "unread_close", "comm": "tct-closer", "unread_bytes": 1234.0, "family": c.family,
			"namespace": c.meta.Namespace, "pod": c.meta.Pod, "pod_uid": c.meta.PodUID, "container_id": c.id}
		if c.namesContainer {
			want["container"] = c.meta.Container
		}
		var found []map[string]any
		for _, rec := range recs {
			pid := int(rec["pid"].(float64))
			if pid == c.peer && rec["pod"] != nil {
				t.Errorf("%s: the peer, a host process, got pod %v", c.name, rec["pod"])
			}
			if pid == c.closer && rec["kind"] == "unread_close" {
				found = append(found, rec)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d unread_close records of the closer (pid %d), want 1", c.name, len(found), c.closer)
			continue
		}
		for k, v := range want {
			if found[0][k] != v {
				t.Errorf("%s: %s = %v, want %v", c.name, k, found[0][k], v)
			}
		}
		if !c.namesContainer && found[0]["container"] != nil {
			t.Errorf("%s: container = %v, but nothing on the node names it", c.name, found[0]["container"])
		}
	}
}

// podFlags are the tracer's flags to find this test's node state.
func podFlags(root, dir string) []string {
	return []string{"--pods", "auto", "--cgroup-root", root,
		"--containerd-root", filepath.Join(dir, "containerd"), "--crio-root", filepath.Join(dir, "crio"),
		"--docker-root", filepath.Join(dir, "docker"), "--kubelet-root", filepath.Join(dir, "kubelet")}
}

func requireCgroup2(t *testing.T) string {
	t.Helper()
	root, err := kubepods.FindCgroupRoot()
	if err != nil {
		t.Skipf("skipped: pod attribution reads the cgroup v2 hierarchy: %v", err)
	}
	return root
}

// podTest sets up what a pod test needs: the cgroup v2 root, the built
// command, a directory of node state, a namespace, and every layout.
func podTest(t *testing.T) (root, bin, dir string, ns *scenario.Namespace, cases []*podCase) {
	t.Helper()
	requireHost(t)
	root = requireCgroup2(t)
	bin = buildCLI(t)
	ns = newNamespace(t)
	dir = t.TempDir()
	return root, bin, dir, ns, setUpPods(t, root, dir)
}

// TestPodAttributionTrace builds real kubepods cgroups in each layout, runs
// a process in each that closes with unread data, and checks that trace
// mode's NDJSON names the pod, namespace and container.
func TestPodAttributionTrace(t *testing.T) {
	root, bin, dir, ns, cases := podTest(t)

	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, append([]string{"-o", "json", "--netns", strconv.FormatUint(uint64(ns.Inode), 10),
		"--ready-file", ready, "--duration", "60s"}, podFlags(root, dir)...)...)
	var stdout, stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	waitForFile(t, ready, cmd)
	mib := runPods(t, ns, cases)
	time.Sleep(300 * time.Millisecond) // past the collector's drain period
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tracer: %v\n%s", err, stderr.String())
	}
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q", sc.Text())
		}
		recs = append(recs, m)
	}
	checkPodRecords(t, cases, recs, mib)
}

// TestPodAttributionServe does the same with the daemon: its logs name the
// pods and --metrics.by-pod counts each container's anomaly.
func TestPodAttributionServe(t *testing.T) {
	root, bin, dir, ns, cases := podTest(t)

	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, bin, http.DefaultClient, "http://"+target, append([]string{"--web.listen-address", target,
		"--netns", strconv.FormatUint(uint64(ns.Inode), 10), "--metrics.by-pod", "10"}, podFlags(root, dir)...)...)
	mib := runPods(t, ns, cases)

	// The by-pod counters, once every case has arrived.
	want := map[string]float64{}
	for _, c := range cases {
		container := ""
		if c.namesContainer {
			container = c.meta.Container
		}
		want[c.meta.Namespace+"/"+c.meta.Pod+"/"+container] = 1
	}
	var got map[string]float64
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = byPodSeries(t, "http://"+target+"/metrics")
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("tcpclose_anomalies_by_pod_total{kind=unread_close} = %v, want %v", got, want)
	}
	d.stop(t)
	checkPodRecords(t, cases, d.logRecords(t), mib)
}

// byPodSeries scrapes the unread_close series of
// tcpclose_anomalies_by_pod_total, keyed namespace/pod/container.
func byPodSeries(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	mf := families["tcpclose_anomalies_by_pod_total"]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		if l["kind"] == "unread_close" {
			out[l["namespace"]+"/"+l["pod"]+"/"+l["container"]] = m.GetCounter().GetValue()
		}
	}
	return out
}

// daemonSetCapabilities are the only capabilities the DaemonSet grants
// (deploy/: its tests check the manifests add exactly these).
var daemonSetCapabilities = []string{"bpf", "perfmon"}

// Capability numbers (include/uapi/linux/capability.h).
var capabilityBits = map[string]uint{"perfmon": 38, "bpf": 39}

// TestServeLeastPrivilege runs the daemon as the DaemonSet does: uid 0 with
// no capability but CAP_BPF and CAP_PERFMON and no_new_privs. It must
// attach, detect, read the node's state for pod names, and stop cleanly.
func TestServeLeastPrivilege(t *testing.T) {
	setpriv := testenv.RequireTool(t, "setpriv", "util-linux")
	root, bin, dir, ns, cases := podTest(t)
	cases = cases[:1]

	keep := "-all"
	var want uint64
	for _, c := range daemonSetCapabilities {
		keep += ",+" + c
		want |= 1 << capabilityBits[c]
	}
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	args := append([]string{"--no-new-privs", "--inh-caps=-all", "--bounding-set=" + keep, "--", bin, "serve",
		"--web.listen-address", target, "--netns", strconv.FormatUint(uint64(ns.Inode), 10)}, podFlags(root, dir)...)
	d := startDaemonCmd(t, exec.Command(setpriv, args...), http.DefaultClient, "http://"+target)

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var eff uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			if eff, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				t.Fatal(err)
			}
		}
	}
	if eff != want {
		t.Fatalf("daemon's effective capabilities %#x, want exactly %v (%#x)", eff, daemonSetCapabilities, want)
	}

	mib := runPods(t, ns, cases)
	time.Sleep(300 * time.Millisecond)
	d.stop(t)
	checkPodRecords(t, cases, d.logRecords(t), mib)
	d.progs.checkGone(t)
}

// stalledPipe returns a pipe whose buffer (one page) is full: the first
// write of whoever gets w blocks until r is read. The filler is newlines.
func stalledPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	fd := int(w.Fd())
	size, err := unix.FcntlInt(uintptr(fd), unix.F_SETPIPE_SZ, os.Getpagesize())
	if err != nil {
		t.Fatalf("F_SETPIPE_SZ: %v", err)
	}
	if _, err := w.Write([]byte(strings.Repeat("\n", size))); err != nil {
		t.Fatal(err)
	}
	// Full: a non-blocking write of one byte fails.
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.Write(fd, []byte{'\n'}); !errors.Is(err, unix.EAGAIN) {
		t.Fatalf("pipe of %d bytes not full after %d bytes: %v", size, size, err)
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	return r, w
}

// TestPodAttributionShortLived: containers that exit, and whose cgroups and
// runtime state are removed, before the tracer resolves their events (its
// output is stalled meanwhile) are still named: the tracer learnt each
// cgroup as it was created.
func TestPodAttributionShortLived(t *testing.T) {
	requireHost(t)
	root := requireCgroup2(t)
	bin := buildCLI(t)
	ns := newNamespace(t)
	dir := t.TempDir()

	pr, pw := stalledPipe(t)
	ready := filepath.Join(t.TempDir(), "ready")
	cmd := exec.Command(bin, append([]string{"-o", "json", "--netns", strconv.FormatUint(uint64(ns.Inode), 10),
		"--ready-file", ready, "--duration", "60s"}, podFlags(root, dir)...)...)
	var stderr syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = pw, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	waitForFile(t, ready, cmd)

	// A host process's close first: the tracer's first write blocks on the
	// full pipe, and every later event waits, unresolved, behind it.
	plug, err := scenario.Run(ns, "unread_close", "ipv4")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the collector's drain period: the plug is being written

	// The containers start (the tracer sees their cgroups appear), close
	// with unread data, exit, and are removed with their runtime state.
	cases := setUpPods(t, root, dir)
	time.Sleep(100 * time.Millisecond) // a container lives at least this long (runc's start alone takes longer)
	mib := runPods(t, ns, cases)
	for _, c := range cases {
		for _, p := range []string{c.cgroup, filepath.Dir(c.cgroup)} { // the container's, then the pod's
			if err := os.Remove(p); err != nil {
				t.Fatalf("%s: remove cgroup: %v", c.name, err)
			}
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}

	// Only now does the output move.
	out := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		out <- b
	}()
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tracer: %v\n%s", err, stderr.String())
	}
	var recs []map[string]any
	plugged := false
	for _, line := range strings.Split(string(<-out), "\n") {
		if line == "" {
			continue // the filler
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		if pid := int(m["pid"].(float64)); pid == plug.Closer.PID || pid == plug.Peer.PID {
			plugged = plugged || m["kind"] == "unread_close"
			continue
		}
		recs = append(recs, m)
	}
	if !plugged {
		t.Errorf("no unread_close of the host process that stalled the output")
	}
	checkPodRecords(t, cases, recs, mib)
}

// TestPodSourceWarning: a name source that does not exist, or is not what
// its flag names, is reported at start in one line, in both modes; a good
// configuration gets no warning.
func TestPodSourceWarning(t *testing.T) {
	requireHost(t)
	root := requireCgroup2(t)
	bin := buildCLI(t)
	ns := newNamespace(t)
	netns := strconv.FormatUint(uint64(ns.Inode), 10)

	good := t.TempDir()
	for _, sub := range []string{"containerd/io.containerd.runtime.v2.task", "crio/overlay-containers", "docker/containers", "kubelet/pods"} {
		if err := os.MkdirAll(filepath.Join(good, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	notState := t.TempDir() // e.g. containerd's root given instead of its state directory
	tests := []struct {
		name string
		args []string
		want string // the warning line; "" for none
	}{
		{"good sources", podFlags(root, good), ""},
		{"containerd root missing", append(podFlags(root, good), "--containerd-root", missing),
			"pods: no names from --containerd-root " + missing + ": no such directory (events in pods get the pod uid and container id only)"},
		{"two wrong", append(podFlags(root, good), "--containerd-root", notState, "--kubelet-root", missing),
			"pods: no names from --containerd-root " + notState + ": no io.containerd.runtime.v2.task in it; --kubelet-root " + missing +
				": no such directory (events in pods get the pod uid and container id only)"},
		{"source off", append(podFlags(root, good), "--containerd-root", ""), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, append([]string{"-o", "json", "--netns", netns, "--duration", "500ms"}, tt.args...)...)
			var stdout, stderr syncbuf.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("tracer: %v\n%s", err, stderr.String())
			}
			var warnings []string
			for _, line := range strings.Split(stderr.String(), "\n") {
				if w, ok := strings.CutPrefix(line, "warning: pods: "); ok {
					warnings = append(warnings, "pods: "+w)
				}
			}
			want := []string{}
			if tt.want != "" {
				want = []string{tt.want}
			}
			if fmt.Sprintf("%q", warnings) != fmt.Sprintf("%q", want) {
				t.Errorf("trace: pod warnings %q, want %q", warnings, want)
			}
		})
	}

	// The daemon logs the same line once, as a warning.
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := startDaemon(t, bin, http.DefaultClient, "http://"+target, append([]string{"--web.listen-address", target,
		"--netns", netns}, append(podFlags(root, good), "--containerd-root", missing)...)...)
	d.stop(t)
	var warns []string
	for _, line := range strings.Split(d.stdout.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		if msg, _ := rec["msg"].(string); rec["level"] == "WARN" && strings.HasPrefix(msg, "pods: ") {
			warns = append(warns, msg)
		}
	}
	want := "pods: no names from --containerd-root " + missing + ": no such directory (events in pods get the pod uid and container id only)"
	if len(warns) != 1 || warns[0] != want {
		t.Errorf("serve: pod warnings %q, want [%q]", warns, want)
	}
}

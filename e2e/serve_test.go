package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/syncbuf"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
)

// rulesFile is the alerting rules file users load, tested as shipped.
const rulesFile = "../deploy/prometheus/tcpclose-trace.rules.yml"

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// daemon is a running `tcpclose-trace serve`.
type daemon struct {
	cmd    *exec.Cmd
	stdout syncbuf.Buffer
	stderr syncbuf.Buffer
	waited chan error
	progs  *heldPrograms // the BPF programs it was seen holding
}

// startDaemon starts `bin serve args...` and returns once /readyz answers
// 200 through client at base.
func startDaemon(t *testing.T, bin string, client *http.Client, base string, args ...string) *daemon {
	t.Helper()
	return startDaemonCmd(t, exec.Command(bin, append([]string{"serve"}, args...)...), client, base)
}

// startDaemonCmd starts cmd, a daemon perhaps behind a wrapper, and returns
// once /readyz answers 200 through client at base.
func startDaemonCmd(t *testing.T, cmd *exec.Cmd, client *http.Client, base string) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, waited: make(chan error, 1)}
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.progs = watchPrograms(t, d.cmd)
	go func() { d.waited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Kill()
			<-d.waited
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.waited:
			t.Fatalf("daemon exited before it was ready: %v\nstderr: %s\nstdout: %s", err, d.stderr.String(), d.stdout.String())
		default:
		}
		if resp, err := client.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				d.progs.read() // ready: every program is loaded
				d.progs.requireLoaded(t)
				return d
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("daemon not ready within 30 s; stdout: %s", d.stdout.String())
	return nil
}

// stop sends SIGTERM and asserts a clean exit within a few seconds.
func (d *daemon) stop(t *testing.T) time.Duration {
	t.Helper()
	d.progs.read()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.waited:
		if err != nil {
			t.Errorf("daemon exit after SIGTERM: %v; stderr: %s", err, d.stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("daemon still running 5 s after SIGTERM")
	}
	return time.Since(start)
}

// logRecords returns the daemon's JSON log lines that carry an event kind.
func (d *daemon) logRecords(t *testing.T) []map[string]any {
	t.Helper()
	var recs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(d.stdout.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		if _, ok := m["kind"]; ok {
			recs = append(recs, m)
		}
	}
	return recs
}

// prometheus is a real Prometheus server on loopback.
type prometheus struct {
	base string
}

func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	bin := testenv.RequireTool(t, "prometheus", "prometheus")
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: tcpclose-trace
    static_configs:
      - targets: [%q]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	p := &prometheus{base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-waited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(p.base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-waited:
			t.Fatalf("prometheus exited:\n%s", out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("prometheus not ready within 30 s:\n%s", out.String())
	return nil
}

// api calls the HTTP API and decodes its data field into v.
func (p *prometheus) api(t *testing.T, path string, params url.Values, v any) {
	t.Helper()
	resp, err := http.Get(p.base + path + "?" + params.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if body.Status != "success" {
		t.Fatalf("%s %v: %s", path, params, body.Error)
	}
	if err := json.Unmarshal(body.Data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// samples evaluates an instant query and returns its sample values.
func (p *prometheus) samples(t *testing.T, q string) []float64 {
	t.Helper()
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	p.api(t, "/api/v1/query", url.Values{"query": {q}}, &data)
	var vs []float64
	for _, r := range data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %q: %v", q, s, err)
		}
		vs = append(vs, v)
	}
	return vs
}

// query evaluates an instant query that must return exactly one sample.
func (p *prometheus) query(t *testing.T, q string) float64 {
	t.Helper()
	vs := p.samples(t, q)
	if len(vs) != 1 {
		t.Fatalf("query %s: %d samples, want 1", q, len(vs))
	}
	return vs[0]
}

// waitForScrape returns once Prometheus holds a scrape of the daemon taken
// after since.
func (p *prometheus) waitForScrape(t *testing.T, since time.Time) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ts := p.samples(t, `timestamp(tcpclose_programs_attached{job="tcpclose-trace"})`)
		if len(ts) == 1 && ts[0] > float64(since.UnixMilli())/1000 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrape after %v within 30 s", since)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// alertStates returns each alert's state by name.
func (p *prometheus) alertStates(t *testing.T) map[string]string {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	p.api(t, "/api/v1/alerts", nil, &data)
	states := map[string]string{}
	for _, a := range data.Alerts {
		states[a.Labels["alertname"]] = a.State
	}
	return states
}

// TestServePrometheus runs the daemon, a real Prometheus scraping it with
// the shipped rules, and bad closes in a private namespace. Through the
// Prometheus API the counters must equal the namespace's kernel counter
// deltas and the daemon's own logs, and the data-loss alert must fire.
func TestServePrometheus(t *testing.T) {
	requireHost(t)
	promtool := testenv.RequireTool(t, "promtool", "prometheus")
	bin := buildCLI(t)
	ns := newNamespace(t)
	port := freePort(t)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	d := startDaemon(t, bin, http.DefaultClient, "http://"+target, "--web.listen-address", target,
		"--netns", strconv.FormatUint(uint64(ns.Inode), 10), "--metrics.by-comm", "4")
	prom := startPrometheus(t, target)
	prom.waitForScrape(t, time.Now())

	before, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	var unreadBytes uint64
	for _, family := range []string{"ipv4", "ipv6"} {
		for _, name := range []string{"unread_close", "undrained_time_wait", "linger_zero", "closed_port", "peer_reset"} {
			r, err := scenario.Run(ns, name, family)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, family, err)
			}
			unreadBytes += uint64(r.UnreadBytes)
		}
	}
	after, err := ns.Counters()
	if err != nil {
		t.Fatal(err)
	}
	mib := after.Delta(before)
	end := time.Now()

	prom.waitForScrape(t, end)
	sel := `{job="tcpclose-trace"}`
	got := func(metric string) uint64 { return uint64(prom.query(t, "sum("+metric+sel+")")) }
	gotKind := func(kind string) uint64 {
		return uint64(prom.query(t, fmt.Sprintf(`tcpclose_closes_total{job="tcpclose-trace",kind=%q}`, kind)))
	}
	abortOnData := uint64(prom.query(t, `tcpclose_data_after_close_total{job="tcpclose-trace",socket="full"}`))

	// Every event was logged: the log and the exact counters agree per kind.
	logged := map[string]uint64{}
	for _, rec := range d.logRecords(t) {
		logged[rec["kind"].(string)]++
	}
	type agreement struct {
		what      string
		got, want uint64
	}
	checks := []agreement{
		{"unread_close = TcpExtTCPAbortOnClose", gotKind("unread_close"), mib["TcpExtTCPAbortOnClose"]},
		{"abort_close + data_after_close{socket=full} = TcpExtTCPAbortOnData", gotKind("abort_close") + abortOnData, mib["TcpExtTCPAbortOnData"]},
		{"resets sent = TcpOutRsts", got("tcpclose_resets_sent_total"), mib["TcpOutRsts"]},
		{"unread bytes = the scenarios' unread bytes", got("tcpclose_discarded_unread_bytes_total"), unreadBytes},
		{"unread histogram count = unread_close", got("tcpclose_unread_at_close_bytes_count"), gotKind("unread_close")},
		{"ring records lost", got("tcpclose_ring_lost_records_total"), 0},
		{"programs attached", got("tcpclose_programs_attached"), uint64(len(kernelSupport(t).Hooks))},
		{"data_after_close logged = counted", logged["data_after_close"], got("tcpclose_data_after_close_total")},
		{"reset_received logged = counted", logged["reset_received"], got("tcpclose_resets_received_total")},
		{"by-comm: tct-closer unread_close = unread_close", uint64(prom.query(t,
			`tcpclose_anomalies_by_comm_total{job="tcpclose-trace",comm="tct-closer",kind="unread_close"}`)), gotKind("unread_close")},
	}
	for _, kind := range []string{"unread_close", "undrained_close", "abort_close"} {
		checks = append(checks, agreement{kind + " logged = counted", logged[kind], gotKind(kind)})
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %d, want %d", c.what, c.got, c.want)
		}
	}
	if mib["TcpExtTCPAbortOnClose"] != 2 || mib["TcpOutRsts"] == 0 {
		t.Errorf("scenarios did not run as designed: kernel counters %v", mib)
	}

	// The data-loss alert fires; the health alerts stay silent.
	deadline := time.Now().Add(30 * time.Second)
	for {
		states := prom.alertStates(t)
		if states["TCPCloseUnreadDataDiscarded"] == "firing" && states["TCPCloseDataAfterClose"] == "firing" {
			for _, quiet := range []string{"TCPCloseTraceEventsLost", "TCPCloseTraceNotAttached"} {
				if s, ok := states[quiet]; ok {
					t.Errorf("alert %s is %s, want silent", quiet, s)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("data-loss alerts not firing within 30 s: %v", states)
		}
		time.Sleep(250 * time.Millisecond)
	}

	// A real scrape passes promtool's checks.
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = bytes.NewReader(scrape)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}

	took := d.stop(t)
	t.Logf("SIGTERM to exit: %v", took)
	d.progs.checkGone(t)
}

// TestServeErrors checks that bad daemon input gives one clear line, a
// non-zero exit, and nothing attached.
func TestServeErrors(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	malformed := write("malformed.yml", "tls_server_config: [not, a, map\n")
	unknownField := write("unknown.yml", "basic_auth_user:\n  alice: x\n")
	missingTLS := write("missing-tls.yml", "tls_server_config:\n  cert_file: "+filepath.Join(dir, "no.crt")+
		"\n  key_file: "+filepath.Join(dir, "no.key")+"\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantMsg  string
	}{
		{"port in use", []string{"--web.listen-address", busy.Addr().String()}, 1, "address already in use"},
		{"web config missing", []string{"--web.config.file", filepath.Join(dir, "absent.yml")}, 1, "no such file"},
		{"web config is a directory", []string{"--web.config.file", dir}, 1, "is a directory"},
		{"web config malformed", []string{"--web.config.file", malformed}, 1, "yaml"},
		{"web config unknown field", []string{"--web.config.file", unknownField}, 1, "basic_auth_user"},
		{"TLS files missing", []string{"--web.config.file", missingTLS}, 1, "no.crt"},
		{"bad log format", []string{"--log.format", "xml"}, 2, "--log.format must be json or logfmt"},
		{"bad log level", []string{"--log.level", "loud"}, 2, "--log.level must be"},
		{"bad ring size", []string{"--ring-size", "3M"}, 2, "not a power of two"},
		{"by-comm out of range", []string{"--metrics.by-comm", "-1"}, 2, "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"serve", "--web.listen-address", fmt.Sprintf("127.0.0.1:%d", freePort(t))}, tt.args...)
			cmd := exec.Command(bin, args...)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			// It fails before it loads anything; if it did load programs,
			// polling its descriptors is how this test sees them.
			progs, err := runWatched(t, cmd, 5*time.Millisecond)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != tt.wantCode {
				t.Fatalf("exit = %v, want code %d; stderr: %s", err, tt.wantCode, stderr.String())
			}
			msg := stderr.String()
			if !strings.HasPrefix(msg, "tcpclose-trace: ") || !strings.Contains(msg, tt.wantMsg) ||
				strings.Count(strings.TrimSpace(msg), "\n") != 0 {
				t.Errorf("stderr = %q, want one line with %q", msg, tt.wantMsg)
			}
			if strings.Contains(stdout.String(), "programs attached") {
				t.Errorf("programs were attached before the error: %s", stdout.String())
			}
			progs.checkGone(t)
		})
	}
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tcpclose-trace test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// authTransport adds basic auth to every request.
type authTransport struct {
	user, password string
	base           http.RoundTripper
}

func (a authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(a.user, a.password)
	return a.base.RoundTrip(r)
}

// TestServeTLSBasicAuth runs the daemon with an exporter-toolkit web config:
// only HTTPS with the right password gets the metrics.
func TestServeTLSBasicAuth(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	dir := t.TempDir()
	certFile, keyFile, pool := writeSelfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	cfg := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n",
		certFile, keyFile, hash)
	if err := os.WriteFile(webConfig, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tlsTransport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	authed := &http.Client{Transport: authTransport{"prometheus", "s3cret", tlsTransport}, Timeout: 5 * time.Second}
	d := startDaemon(t, bin, authed, "https://"+target, "--web.listen-address", target, "--web.config.file", webConfig)

	tests := []struct {
		name     string
		client   *http.Client
		url      string
		wantCode int
	}{
		{"https with the password", authed, "https://" + target + "/metrics", http.StatusOK},
		{"https without a password", &http.Client{Transport: tlsTransport}, "https://" + target + "/metrics", http.StatusUnauthorized},
		{"https with a wrong password", &http.Client{Transport: authTransport{"prometheus", "guess", tlsTransport}},
			"https://" + target + "/metrics", http.StatusUnauthorized},
		{"plain http", http.DefaultClient, "http://" + target + "/metrics", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := tt.client.Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("GET %s = %d, want %d", tt.url, resp.StatusCode, tt.wantCode)
			}
			attached := fmt.Sprintf("tcpclose_programs_attached %d", len(kernelSupport(t).Hooks))
			if tt.wantCode == http.StatusOK && !bytes.Contains(body, []byte(attached)) {
				t.Errorf("metrics lack %s:\n%s", attached, body)
			}
		})
	}
	d.stop(t)
}

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// openFDs counts the open file descriptors of process pid.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// getHealthz sends one keep-alive GET /healthz on c and reads the answer.
func getHealthz(c net.Conn, br *bufio.Reader, closeAfter bool) error {
	hdr := ""
	if closeAfter {
		hdr = "Connection: close\r\n"
	}
	if _, err := fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: t\r\n%s\r\n", hdr); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// TestServeIdleClients: idle keep-alive clients cannot hold the daemon's
// memory. With the default cap (64 connections), 64 clients go idle after a
// request and 32 more ask: the daemon accepts no more than 64 at once (the
// others wait in the accept queue), closes the idle ones after the idle
// timeout, then serves those that waited, and a scrape still works.
func TestServeIdleClients(t *testing.T) {
	requireHost(t)
	bin := buildCLI(t)
	ns := newNamespace(t)
	const (
		capacity = 64 // the default --web.max-connections
		extra    = 32
		idle     = 2 * time.Second
	)
	target := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	base := "http://" + target
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	d := startDaemon(t, bin, client, base, "--web.listen-address", target,
		"--netns", strconv.FormatUint(uint64(ns.Inode), 10), "--web.idle-timeout", idle.String())
	pid := d.cmd.Process.Pid
	time.Sleep(200 * time.Millisecond) // the readiness probes' connections close
	fds0 := openFDs(t, pid)

	type conn struct {
		c  net.Conn
		br *bufio.Reader
	}
	dial := func() conn {
		c, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return conn{c, bufio.NewReader(c)}
	}
	idlers := make([]conn, capacity)
	var firstIdle time.Time // when idler 0, the first to go idle, got its answer
	for i := range idlers {
		idlers[i] = dial()
		if err := getHealthz(idlers[i].c, idlers[i].br, false); err != nil {
			t.Fatalf("idle client %d: %v", i, err)
		}
		if i == 0 {
			firstIdle = time.Now()
		}
	}
	idleSince := time.Now() // the last idler's answer
	waiting := make([]conn, extra)
	answered := make(chan error, extra)
	for i := range waiting {
		waiting[i] = dial() // the kernel completes the handshake: in the accept queue
		go func(c conn) { answered <- getHealthz(c.c, c.br, true) }(waiting[i])
	}
	time.Sleep(idle / 4)
	if fds := openFDs(t, pid); fds-fds0 > capacity {
		t.Errorf("%d descriptors more than before %d clients, want at most %d (the cap)", fds-fds0, capacity+extra, capacity)
	}
	select {
	case err := <-answered:
		t.Errorf("a client beyond the cap was served while %d idle ones held every slot (err %v)", capacity, err)
	default:
	}

	// The idle clients are closed after the idle timeout, and only then.
	for i, c := range idlers {
		_ = c.c.SetReadDeadline(idleSince.Add(idle + 5*time.Second))
		n, err := c.br.Read(make([]byte, 1))
		if err != io.EOF {
			t.Fatalf("idle client %d: read %d bytes, %v; want EOF (closed by the daemon)", i, n, err)
		}
		if i == 0 {
			// Measured from idler 0's own answer: the 64 requests take a
			// while under emulation, and the daemon's timer for idler 0
			// started with its answer, not the last one's.
			if after := time.Since(firstIdle); after < idle-200*time.Millisecond {
				t.Errorf("idle client closed after %v, before the idle timeout %v", after, idle)
			}
		}
	}
	t.Logf("idle clients closed %v after their request", time.Since(idleSince))
	for range extra {
		select {
		case err := <-answered:
			if err != nil {
				t.Errorf("waiting client: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a client that waited for a slot was not served within 10 s of the idle ones closing")
		}
	}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "tcpclose_closes_total") {
		t.Errorf("scrape after the idle clients: %v, %s", err, resp.Status)
	}
	time.Sleep(200 * time.Millisecond)
	if fds := openFDs(t, pid); fds > fds0+2 {
		t.Errorf("%d descriptors after every client left, %d before", fds, fds0)
	}
	d.stop(t)
}

// Package scenario drives real loopback TCP close patterns inside a private
// network namespace, so that tests can compare what the tracer reports with
// the kernel's own counters.
//
// Each scenario runs two helper processes, tct-closer (the culprit) and
// tct-peer, which are this same executable re-run through a symlink: main
// (or TestMain) must call MaybeRunHelper first thing.
package scenario

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// cmdTimeout bounds every external command (ip, nstat, sysctl).
const cmdTimeout = 10 * time.Second

// Namespace is a private network namespace with loopback up.
type Namespace struct {
	// Name is the namespace's name under /run/netns, "tct-" and a random suffix.
	Name string
	// Inode is the inode of the namespace, as in stat -L /run/netns/NAME.
	Inode uint32
	// CloserCgroup, when set, is a cgroup v2 directory the closer helper is
	// moved into as it starts (before it opens any socket).
	CloserCgroup string

	dir string // temp dir: helper symlinks and nstat history

	mu     sync.Mutex
	diagFD int // sock_diag netlink socket inside the namespace, or -1
}

// NewNamespace creates a network namespace named tct-XXXXXXXX and brings its
// loopback up.
func NewNamespace() (*Namespace, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random netns name: %w", err)
	}
	name := "tct-" + hex.EncodeToString(b[:])
	if _, err := command("ip", nil, "netns", "add", name); err != nil {
		return nil, fmt.Errorf("create netns %s: %w", name, err)
	}
	n := &Namespace{Name: name, diagFD: -1}
	if err := n.setup(); err != nil {
		if cerr := n.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return nil, err
	}
	return n, nil
}

func (n *Namespace) setup() error {
	if _, err := command("ip", nil, "-n", n.Name, "link", "set", "lo", "up"); err != nil {
		return fmt.Errorf("set lo up in netns %s: %w", n.Name, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(n.path(), &st); err != nil {
		return fmt.Errorf("stat netns %s: %w", n.Name, err)
	}
	n.Inode = uint32(st.Ino)
	dir, err := os.MkdirTemp("", n.Name+"-")
	if err != nil {
		return fmt.Errorf("temp dir for netns %s: %w", n.Name, err)
	}
	n.dir = dir
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	for _, role := range []string{roleCloser, rolePeer} {
		if err := os.Symlink(exe, filepath.Join(dir, "tct-"+role)); err != nil {
			return fmt.Errorf("helper symlink: %w", err)
		}
	}
	return nil
}

func (n *Namespace) path() string { return filepath.Join("/run/netns", n.Name) }

// Close deletes the namespace and its temp files.
func (n *Namespace) Close() error {
	var errs []error
	n.mu.Lock()
	if n.diagFD >= 0 {
		if err := unix.Close(n.diagFD); err != nil {
			errs = append(errs, fmt.Errorf("close diag socket: %w", err))
		}
		n.diagFD = -1
	}
	n.mu.Unlock()
	if _, err := command("ip", nil, "netns", "delete", n.Name); err != nil {
		errs = append(errs, fmt.Errorf("delete netns %s: %w", n.Name, err))
	}
	if n.dir != "" {
		if err := os.RemoveAll(n.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove temp dir: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Sysctl sets a sysctl inside the namespace, e.g.
// ("net.ipv4.tcp_fin_timeout", "120").
func (n *Namespace) Sysctl(key, value string) error {
	if key == "" || strings.ContainsAny(key, "= \t\n") || strings.ContainsAny(value, "\n") {
		return fmt.Errorf("sysctl %q=%q: invalid key or value", key, value)
	}
	if _, err := command("ip", nil, "netns", "exec", n.Name, "sysctl", "-qw", key+"="+value); err != nil {
		return fmt.Errorf("sysctl %s=%s in netns %s: %w", key, value, n.Name, err)
	}
	return nil
}

// sysctlValue reads a sysctl inside the namespace; an error if the
// namespace has no such sysctl.
func (n *Namespace) sysctlValue(key string) (string, error) {
	if key == "" || strings.ContainsAny(key, "= \t\n") {
		return "", fmt.Errorf("sysctl %q: invalid key", key)
	}
	out, err := command("ip", nil, "netns", "exec", n.Name, "sysctl", "-n", key)
	if err != nil {
		return "", fmt.Errorf("sysctl %s in netns %s: %w", key, n.Name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Counters are the namespace's SNMP and netstat counters by nstat name, e.g.
// c["TcpExtTCPAbortOnClose"], c["TcpOutRsts"], c["TcpEstabResets"].
type Counters map[string]uint64

// Counters reads the namespace's absolute counters with nstat, without
// touching any nstat history file.
func (n *Namespace) Counters() (Counters, error) {
	env := []string{"NSTAT_HISTORY=" + filepath.Join(n.dir, "nstat.history")}
	out, err := command("ip", env, "netns", "exec", n.Name, "nstat", "-asz")
	if err != nil {
		return nil, fmt.Errorf("nstat in netns %s: %w", n.Name, err)
	}
	c, err := parseNstat(out)
	if err != nil {
		return nil, fmt.Errorf("nstat in netns %s: %w", n.Name, err)
	}
	return c, nil
}

// parseNstat parses `nstat -a` output: "#kernel" then "Name value rate" lines.
func parseNstat(out []byte) (Counters, error) {
	c := Counters{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("parse line %q", line)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse line %q: %w", line, err)
		}
		c[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read output: %w", err)
	}
	if len(c) == 0 {
		return nil, errors.New("no counters in output")
	}
	return c, nil
}

// Delta returns c minus before, per key of c (a key missing from before counts
// from zero). Keys whose value went down, such as the gauge TcpCurrEstab, are
// left out.
func (c Counters) Delta(before Counters) Counters {
	d := make(Counters, len(c))
	for k, v := range c {
		if b := before[k]; v >= b {
			d[k] = v - b
		}
	}
	return d
}

// command runs name with args (bounded by cmdTimeout) and returns its stdout.
func command(name string, env []string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), scaled(cmdTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", name, err, msg)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return stdout.Bytes(), nil
}

// inNamespace runs fn on an OS thread switched into the namespace. The thread
// is thrown away if it cannot be switched back.
func (n *Namespace) inNamespace(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open(n.path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open netns %s: %w", n.Name, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread exits with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", n.Name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

package vmtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Initramfs describes the root file system the guest boots into.
type Initramfs struct {
	// Busybox is a statically linked busybox (Debian's busybox-static).
	Busybox string
	// Applets are the busybox commands linked into /usr/bin.
	Applets []string
	// Programs are host executables copied to the same path with the shared
	// libraries ldd lists for them.
	Programs []string
	// Files are copied as they are: guest path -> host path.
	Files map[string]string
	// Userland, if set, is a tree of unpacked packages (FetchUserland)
	// merged into the root without its documentation (usr/share): its
	// top-level bin, sbin and lib go under usr as in a merged-/usr Debian,
	// links stay links, and what the other fields put there wins.
	Userland string
	// Init is the /init script.
	Init string
}

// mergedUsr are the top-level links of a merged-/usr Debian.
var mergedUsr = map[string]string{"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib", "lib64": "usr/lib64"}

// guestEtc are small files every tool expects.
var guestEtc = map[string]string{
	"etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	"etc/group":         "root:x:0:\nnogroup:x:65534:\n",
	"etc/hosts":         "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n",
	"etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}

// Build assembles the tree in dir (which must not exist) and writes it as
// an uncompressed newc cpio archive to out (the kernel unpacks it as is).
func (f *Initramfs) Build(ctx context.Context, dir, out string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("initramfs tree: %w", err)
	}
	for name, target := range mergedUsr {
		if err := os.MkdirAll(filepath.Join(dir, target), 0o755); err != nil {
			return fmt.Errorf("initramfs tree: %w", err)
		}
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("initramfs tree: %w", err)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "root", "etc", "var/tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("initramfs tree: %w", err)
		}
	}
	for name, content := range guestEtc {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("initramfs tree: %w", err)
		}
	}
	if err := copyFile(f.Busybox, filepath.Join(dir, "usr/bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, a := range f.Applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "usr/bin", a)); err != nil {
			return fmt.Errorf("busybox applet %s: %w", a, err)
		}
	}
	copied := map[string]bool{}
	for _, p := range f.Programs {
		libs, err := sharedLibraries(ctx, p)
		if err != nil {
			return err
		}
		for _, path := range append([]string{p}, libs...) {
			if copied[path] {
				continue
			}
			copied[path] = true
			if err := copyFile(path, filepath.Join(dir, path), 0o755); err != nil {
				return err
			}
		}
	}
	for guest, host := range f.Files {
		mode := os.FileMode(0o644)
		if st, err := os.Stat(host); err == nil && st.Mode()&0o111 != 0 {
			mode = 0o755
		}
		if err := copyFile(host, filepath.Join(dir, guest), mode); err != nil {
			return err
		}
	}
	if f.Userland != "" {
		if err := mergeUserland(f.Userland, dir); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "init"), []byte(f.Init), 0o755); err != nil {
		return fmt.Errorf("write /init: %w", err)
	}
	return writeCpio(ctx, dir, out)
}

// userlandSkip are the parts of a userland tree the guest does not need.
var userlandSkip = []string{"usr/share", "usr/include", "var", "boot", ".packages"}

// userlandPath is where a path of a userland tree goes in the guest's
// root: under usr for the top-level links of a merged /usr; "" to skip it.
func userlandPath(rel string) string {
	for _, s := range userlandSkip {
		if rel == s || strings.HasPrefix(rel, s+"/") {
			return ""
		}
	}
	top, rest, _ := strings.Cut(rel, "/")
	if target, ok := mergedUsr[top]; ok {
		if rest == "" {
			return target
		}
		return target + "/" + rest
	}
	return rel
}

// mergeUserland copies the tree src into the root dir (see
// Initramfs.Userland); existing paths are kept.
func mergeUserland(src, dir string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || rel == "." {
			return err
		}
		guest := userlandPath(filepath.ToSlash(rel))
		if guest == "" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		dst := filepath.Join(dir, guest)
		if d.IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("userland %s: %w", rel, err)
			}
			return nil
		}
		if _, err := os.Lstat(dst); err == nil {
			return nil
		}
		if d.Type()&os.ModeSymlink != 0 {
			if _, ok := mergedUsr[rel]; ok {
				return nil // a merged /usr's own link
			}
			target, err := os.Readlink(path)
			if err != nil {
				return fmt.Errorf("userland %s: %w", rel, err)
			}
			if err := os.Symlink(target, dst); err != nil {
				return fmt.Errorf("userland %s: %w", rel, err)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return copyFile(path, dst, info.Mode().Perm())
	})
}

// lddLine matches "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)"
// and "/lib64/ld-linux-x86-64.so.2 (0x...)".
var lddLine = regexp.MustCompile(`^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$`)

// sharedLibraries lists the libraries (and the loader) a dynamic executable
// loads; none for a static one.
func sharedLibraries(ctx context.Context, exe string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", exe).CombinedOutput()
	if strings.Contains(string(out), "not a dynamic executable") {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w: %s", exe, err, strings.TrimSpace(string(out)))
	}
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "not found") {
			return nil, fmt.Errorf("ldd %s: %s", exe, strings.TrimSpace(sc.Text()))
		}
		if m := lddLine.FindStringSubmatch(sc.Text()); m != nil {
			libs = append(libs, m[1])
		}
	}
	return libs, nil
}

// copyFile copies the content of src (following links) to dst, creating
// dst's directory.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

// writeCpio archives dir with cpio (newc, owned by root).
func writeCpio(ctx context.Context, dir, out string) error {
	var list strings.Builder
	err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		list.WriteString(rel + "\n")
		return nil
	})
	if err != nil {
		return fmt.Errorf("list initramfs tree: %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("create initramfs: %w", err)
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(list.String())
	cmd.Stdout = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cpio: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return f.Close()
}

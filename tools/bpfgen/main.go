// Command bpfgen runs bpf2go into a fresh directory and moves its output into
// place only when it succeeded, so that a failed build (a missing header, a
// compiler error) never deletes or half-writes the committed BPF object and
// bindings. bpf2go removes its own output file when compilation fails, which
// is right for a scratch directory and wrong for a committed one.
//
// Usage (from a go:generate directive):
//
//	go run ./tools/bpfgen -dir bpf -- [bpf2go flags and arguments]
//
// Every argument after -- goes to bpf2go, which receives -output-dir itself.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// bpf2go is the generator, run from the module cache at the version go.mod requires.
const bpf2go = "github.com/cilium/ebpf/cmd/bpf2go"

func main() {
	dir := flag.String("dir", "", "directory that receives the generated files")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: bpfgen -dir DIR -- [bpf2go arguments]")
	}
	flag.Parse()
	if *dir == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir, flag.Args()); err != nil {
		fmt.Fprintf(os.Stderr, "bpfgen: %v\n", err)
		os.Exit(1)
	}
}

func run(dir string, args []string) error {
	// The scratch directory sits next to dir, so that the final rename stays on
	// one file system.
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), ".bpfgen-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	cmd := exec.Command(goTool(), append([]string{"run", bpf2go, "-output-dir", tmp}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bpf2go failed, %s left unchanged: %w", dir, err)
	}
	return moveAll(tmp, dir)
}

// moveAll renames every regular file of from into to. A scratch directory
// without output is an error: bpf2go succeeded without writing anything.
func moveAll(from, to string) error {
	entries, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("read output: %w", err)
	}
	moved := 0
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := os.Rename(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return fmt.Errorf("move %s: %w", e.Name(), err)
		}
		moved++
	}
	if moved == 0 {
		return errors.New("bpf2go wrote no files")
	}
	return nil
}

// goTool is the go command of the toolchain that runs go generate (it sets
// GOROOT), else the one on PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}

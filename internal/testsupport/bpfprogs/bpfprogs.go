// Package bpfprogs tells which BPF programs a process holds and whether
// given programs are still loaded, so that a test can check that the
// programs its own tracer loaded are gone, whatever other tracers run on the
// host.
package bpfprogs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
)

// Process is a running process whose BPF programs can be read. It stays
// bound to that process: once the process is gone it holds nothing, even if
// its pid is reused.
type Process struct {
	fdinfo *os.Root
}

// Open binds to process pid. The process must not have been reaped yet.
func Open(pid int) (*Process, error) {
	r, err := os.OpenRoot(fmt.Sprintf("/proc/%d/fdinfo", pid))
	if err != nil {
		return nil, fmt.Errorf("open fdinfo of process %d: %w", pid, err)
	}
	return &Process{fdinfo: r}, nil
}

// Close releases the process.
func (p *Process) Close() error { return p.fdinfo.Close() }

// Held returns the ids of the programs whose file descriptors the process
// holds: programs, and the links that attach them. Nothing once the
// process is gone.
func (p *Process) Held() ([]ebpf.ProgramID, error) {
	dir, err := p.fdinfo.Open(".")
	if err != nil {
		return nil, gone(err)
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, gone(err)
	}
	var ids []ebpf.ProgramID
	for _, name := range names {
		f, err := p.fdinfo.Open(name)
		if err != nil {
			continue // closed meanwhile
		}
		ids, err = readProgIDs(ids, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read fdinfo %s: %w", name, err)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// gone turns the errors of a process that no longer exists into none.
func gone(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return fmt.Errorf("read fdinfo: %w", err)
}

// Held returns the ids of the programs process pid holds (see
// Process.Held).
func Held(pid int) ([]ebpf.ProgramID, error) {
	p, err := Open(pid)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.Held()
}

// readProgIDs appends the "prog_id:" values of one open fdinfo file. A
// descriptor closed after its file was opened reads as ENOENT: it holds
// nothing any more.
func readProgIDs(ids []ebpf.ProgramID, f *os.File) ([]ebpf.ProgramID, error) {
	more, err := appendProgIDs(ids, f)
	if errors.Is(err, fs.ErrNotExist) {
		return ids, nil
	}
	return more, err
}

// appendProgIDs appends the "prog_id:" values of one fdinfo file.
func appendProgIDs(ids []ebpf.ProgramID, f *os.File) ([]ebpf.ProgramID, error) {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "prog_id:")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
		if err != nil {
			return ids, fmt.Errorf("prog_id %q: %w", v, err)
		}
		ids = append(ids, ebpf.ProgramID(n))
	}
	return ids, sc.Err()
}

// Program is a loaded program.
type Program struct {
	ID   ebpf.ProgramID
	Name string
}

func (p Program) String() string { return fmt.Sprintf("%s (id %d)", p.Name, p.ID) }

// Loaded returns those of ids that are still loaded.
func Loaded(ids []ebpf.ProgramID) ([]Program, error) {
	var left []Program
	for _, id := range ids {
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return left, fmt.Errorf("program %d: %w", id, err)
		}
		prog := Program{ID: id}
		if info, err := p.Info(); err == nil {
			prog.Name = info.Name
		}
		p.Close()
		left = append(left, prog)
	}
	return left, nil
}

// WaitGone waits up to timeout for every program of ids to be unloaded (the
// kernel frees a program a moment after its last reference goes) and
// returns those still loaded then.
func WaitGone(ids []ebpf.ProgramID, timeout time.Duration) ([]Program, error) {
	deadline := time.Now().Add(timeout)
	for {
		left, err := Loaded(ids)
		if err != nil || len(left) == 0 || time.Now().After(deadline) {
			return left, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

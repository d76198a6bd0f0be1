package collector

import (
	"bytes"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
)

// ownersProgram is the iterator over open files that gives sockets made
// before the tracer their owner (bpf/tcpclose.c, learn_owners).
const ownersProgram = bpf.TcpcloseProgLearnOwners

// withoutOldOwners is what is lost when the iterator cannot run.
const withoutOldOwners = "sockets made before the tracer show no owner until a process sends, receives or closes on them"

// learnOwners runs the iterator once: every TCP socket open in any process
// of the host (every network namespace) that has no owner yet gets the
// first process found holding it. It runs after the hooks are attached, so
// a socket made meanwhile has its real owner already and is left alone.
// A kernel that refuses the iterator (before 5.11, no bpf_sock_from_file)
// loses only the owners of older sockets: that is reported, not fatal.
func (c *Collector) learnOwners(spec *ebpf.CollectionSpec, kernel *btf.Spec) {
	learned, full, err := c.runOwnersIterator(spec, kernel)
	if err != nil {
		c.lost = append(c.lost, fmt.Sprintf("kernel refused the iterator over open files (%s): %s", cause(err), withoutOldOwners))
		return
	}
	c.oldSockets = learned
	if full > 0 {
		c.lost = append(c.lost, fmt.Sprintf("%d sockets made before the tracer found the owner table full: they show no owner until a process sends, receives or closes on them", full))
	}
}

// runOwnersIterator runs learn_owners and returns how many sockets it
// recorded and how many found its table full.
func (c *Collector) runOwnersIterator(spec *ebpf.CollectionSpec, kernel *btf.Spec) (learned, full int, err error) {
	ps, ok := spec.Programs[ownersProgram]
	if !ok {
		return 0, 0, fmt.Errorf("BPF object has no program %s", ownersProgram)
	}
	one := spec.Copy()
	one.Programs = map[string]*ebpf.ProgramSpec{ownersProgram: ps}
	coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{
		Programs:        ebpf.ProgramOptions{KernelTypes: kernel},
		MapReplacements: c.coll.Maps,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("load: %w", err)
	}
	defer coll.Close()
	it, err := link.AttachIter(link.IterOptions{Program: coll.Programs[ownersProgram]})
	if err != nil {
		return 0, 0, fmt.Errorf("attach: %w", err)
	}
	defer it.Close()
	r, err := it.Open()
	if err != nil {
		return 0, 0, fmt.Errorf("open: %w", err)
	}
	defer r.Close()
	// One byte per socket: 1 recorded, 0 table full.
	out, err := io.ReadAll(r)
	if err != nil {
		return 0, 0, fmt.Errorf("read: %w", err)
	}
	full = bytes.Count(out, []byte{0})
	return len(out) - full, full, nil
}

// OldSockets returns how many TCP sockets open at start (made before the
// tracer or while it attached) the iterator recorded with their process.
func (c *Collector) OldSockets() int { return c.oldSockets }

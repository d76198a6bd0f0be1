package collector

import (
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
)

// ProgramIDs returns the kernel's ids of the programs the collector loaded,
// so that a test can check, after Close, that each of them is gone. Call it
// before Close.
func (c *Collector) ProgramIDs() ([]ebpf.ProgramID, error) {
	var ids []ebpf.ProgramID
	for name, p := range c.progs {
		info, err := p.Info()
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", name, err)
		}
		id, ok := info.ID()
		if !ok {
			return nil, fmt.Errorf("program %s: the kernel gave no id", name)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

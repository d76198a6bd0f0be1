package collector

import (
	"fmt"
	"reflect"

	"github.com/cilium/ebpf"
)

// ProgramIDs returns the kernel's ids of the programs the collector loaded,
// so that a test can check, after Close, that each of them is gone. Call it
// before Close.
func (c *Collector) ProgramIDs() ([]ebpf.ProgramID, error) {
	var ids []ebpf.ProgramID
	progs := reflect.ValueOf(&c.objs.TcpclosePrograms).Elem()
	for i := range progs.NumField() {
		p, ok := progs.Field(i).Interface().(*ebpf.Program)
		if !ok || p == nil {
			continue
		}
		info, err := p.Info()
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", progs.Type().Field(i).Name, err)
		}
		id, ok := info.ID()
		if !ok {
			return nil, fmt.Errorf("program %s: the kernel gave no id", progs.Type().Field(i).Name)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

package symbolize

import (
	"encoding/binary"
	"sort"
)

// goInlineIndex reads, from a Go 1.20+ pclntab, whether an address is in
// code inlined into its function: debug/gosym gives the function the code
// was compiled into with the file and line of the instruction, which for
// inlined code are those of the inlined function. The runtime's
// PCDATA_InlTreeIndex table says which (-1: not inlined).
type goInlineIndex struct {
	text    uint64
	quantum uint64
	nfunc   int
	ftab    []byte // nfunc+1 {entryoff, funcoff uint32}, then _func records
	pctab   []byte
}

// Layout of the runtime's pclntab (Go 1.20 on: magic 0xfffffff1) and of its
// _func records (runtime/runtime2.go).
const (
	go120Magic         = 0xfffffff1
	pclnHeaderBase     = 8  // magic, pads, minLC, ptrSize; then 8 words
	funcNpcdataOff     = 28 // npcdata uint32
	funcSize           = 44 // fixed part; pcdata offsets follow
	pcdataInlTreeIndex = 2  // abi.PCDATA_InlTreeIndex
	maxPCValueSteps    = 1 << 20
	functabEntrySize   = 8
)

// newGoInlineIndex parses the header of a little-endian, 64-bit pclntab;
// nil if it is another version or malformed.
func newGoInlineIndex(data []byte, text uint64) *goInlineIndex {
	if len(data) < pclnHeaderBase+8*8 || binary.LittleEndian.Uint32(data) != go120Magic || data[7] != 8 || data[6] == 0 {
		return nil
	}
	word := func(i int) uint64 { return binary.LittleEndian.Uint64(data[pclnHeaderBase+8*i:]) }
	nfunc, pctabOff, pclnOff := word(0), word(6), word(7)
	if pctabOff >= uint64(len(data)) || pclnOff >= uint64(len(data)) || nfunc > uint64(len(data))/functabEntrySize {
		return nil
	}
	g := &goInlineIndex{text: text, quantum: uint64(data[6]), nfunc: int(nfunc), ftab: data[pclnOff:], pctab: data[pctabOff:]}
	if len(g.ftab) < (g.nfunc+1)*functabEntrySize {
		return nil
	}
	return g
}

func (g *goInlineIndex) u32(b []byte, off uint64) (uint32, bool) {
	if off > uint64(len(b)) || uint64(len(b))-off < 4 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b[off:]), true
}

// inlined reports whether addr is in inlined code; known is false when the
// tables don't say.
func (g *goInlineIndex) inlined(addr uint64) (inl, known bool) {
	if g == nil || addr < g.text {
		return false, false
	}
	rel := addr - g.text
	entry := func(i int) uint64 { return uint64(binary.LittleEndian.Uint32(g.ftab[i*functabEntrySize:])) }
	if rel >= entry(g.nfunc) {
		return false, false
	}
	i := sort.Search(g.nfunc, func(i int) bool { return entry(i) > rel }) - 1
	if i < 0 {
		return false, false
	}
	funcOff, _ := g.u32(g.ftab, uint64(i)*functabEntrySize+4)
	npcdata, ok := g.u32(g.ftab, uint64(funcOff)+funcNpcdataOff)
	if !ok {
		return false, false
	}
	if npcdata <= pcdataInlTreeIndex {
		return false, true // no inline table: nothing was inlined
	}
	tabOff, ok := g.u32(g.ftab, uint64(funcOff)+funcSize+4*pcdataInlTreeIndex)
	if !ok {
		return false, false
	}
	if tabOff == 0 {
		return false, true
	}
	v, ok := g.pcvalue(uint64(tabOff), entry(i), rel)
	if !ok {
		return false, false
	}
	return v >= 0, true
}

// pcvalue runs a pc-value table (runtime/symtab.go pcvalue) from the
// function's entry to target, both relative to text.
func (g *goInlineIndex) pcvalue(off, pc, target uint64) (int64, bool) {
	if off >= uint64(len(g.pctab)) {
		return 0, false
	}
	p := g.pctab[off:]
	val := int64(-1)
	for step := 0; step < maxPCValueSteps; step++ {
		uv, n := binary.Uvarint(p)
		if n <= 0 || (uv == 0 && step > 0) {
			return 0, false
		}
		p = p[n:]
		if uv&1 != 0 {
			val += -int64(uv>>1) - 1
		} else {
			val += int64(uv >> 1)
		}
		pcd, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		pc += pcd * g.quantum
		if target < pc {
			return val, true
		}
	}
	return 0, false
}

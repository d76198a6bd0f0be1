package symbolize

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// FuzzSymbolizeELF feeds arbitrary bytes as an ELF file through everything
// the symbolizer does with a file: identity, symbols, Go tables, lookups.
// It must not panic, and never run away with memory.
func FuzzSymbolizeELF(f *testing.F) {
	// Seeds: a tiny C program (symbols, dynamic symbols, a build id), with
	// its symbols and stripped, when gcc is there; fuzzing needs no tool.
	// Small seeds keep the fuzzer fast.
	if _, err := exec.LookPath("gcc"); err == nil {
		src := "int helper(int x) { return x * 3; }\nvoid _start(void) { helper(1); for (;;) ; }\n"
		dir := build(f, map[string]string{"tiny.c": src}, "gcc", "-O1", "-nostdlib", "-static-pie", "-Wl,-z,noseparate-code", "-Wl,--build-id", "-o", "tiny", "tiny.c")
		build(f, nil, "strip", "-o", filepath.Join(dir, "stripped"), filepath.Join(dir, "tiny"))
		for _, name := range []string{"tiny", "stripped"} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		ef, err := openELF(r)
		if err != nil {
			return
		}
		readIdentity(ef, r, int64(len(data)))
		syms, _ := loadSymbols(ef, r, int64(len(data)))
		for _, off := range []uint64{0, 0x40, 0x1000, 0x1139, uint64(len(data)) / 2, ^uint64(0)} {
			m := &module{syms: syms}
			var fr Frame
			fill(&fr, m, off, false)
			fill(&fr, m, off, true)
		}
		for _, l := range syms.loads {
			for _, va := range []uint64{l.vaddr, l.vaddr + l.filesz/2} {
				syms.funcAt(va)
				syms.goPosition(va)
			}
		}
	})
}

package symbolize

import (
	"bytes"
	"debug/elf"
	"debug/gosym"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Limits on what is read from an ELF file. The file is untrusted (any user
// can run any binary and any container can ship one): every read is bounded
// and checked against the file's size before anything is allocated.
const (
	maxNoteBytes    = 64 << 10  // a PT_NOTE segment or note section
	maxSectionBytes = 256 << 20 // a symbol table, string table or pclntab
	maxSymbols      = 4 << 20   // function symbols kept per file
	maxBuildID      = 20        // the kernel's BUILD_ID_SIZE_MAX
)

// elfIdentity is what identifies a file: its GNU build id, if it has one.
type elfIdentity struct {
	buildID    [maxBuildID]byte
	hasBuildID bool
}

// segment is a PT_LOAD program header: how file offsets map to addresses.
type segment struct {
	off, filesz, vaddr uint64
}

// symbol is a function symbol of .symtab or .dynsym.
type symbol struct {
	value, size uint64
	name        string
	bind        elf.SymBind
}

// symbols is what a file says about its code, once loaded.
type symbols struct {
	loads []segment
	funcs []symbol // sorted by value, then size (larger first)
	gotab *gosym.Table
	goinl *goInlineIndex
}

// ntGNUBuildID is the note type of a GNU build id (NT_GNU_BUILD_ID).
const ntGNUBuildID = 3

// errBadELF wraps every failure to parse a malformed file.
var errBadELF = errors.New("malformed ELF")

// openELF parses the headers of an ELF file; it never panics.
func openELF(r io.ReaderAt) (f *elf.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("%w: %v", errBadELF, p)
		}
	}()
	f, err = elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadELF, err)
	}
	return f, nil
}

// readIdentity reads the GNU build id of an ELF file the way the kernel
// does (NT_GNU_BUILD_ID notes of the PT_NOTE segments), then from the
// .note.gnu.build-id section: a Go binary's note is outside its PT_NOTE
// segment, so the kernel reports no build id for it, but the id still names
// the file.
func readIdentity(f *elf.File, r io.ReaderAt, size int64) elfIdentity {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		if id, ok := findBuildID(f.ByteOrder, readAt(r, p.Off, p.Filesz, size, maxNoteBytes), p.Align); ok {
			return id
		}
	}
	if s := f.Section(".note.gnu.build-id"); s != nil && s.Type == elf.SHT_NOTE {
		if id, ok := findBuildID(f.ByteOrder, readAt(r, s.Offset, s.Size, size, maxNoteBytes), s.Addralign); ok {
			return id
		}
	}
	return elfIdentity{}
}

// readAt reads n bytes at off of r, a file of size bytes, or nil if that is
// beyond the file or the limit.
func readAt(r io.ReaderAt, off, n uint64, size int64, limit uint64) []byte {
	if n == 0 || n > limit || off > uint64(size) || n > uint64(size)-off {
		return nil
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, int64(off)); err != nil {
		return nil
	}
	return buf
}

// findBuildID walks the notes of a note segment or section.
func findBuildID(order binary.ByteOrder, notes []byte, align uint64) (elfIdentity, bool) {
	pad := uint64(4)
	if align == 8 {
		pad = 8
	}
	alignUp := func(n uint64) uint64 { return (n + pad - 1) &^ (pad - 1) }
	for len(notes) >= 12 {
		namesz := uint64(order.Uint32(notes[0:]))
		descsz := uint64(order.Uint32(notes[4:]))
		typ := order.Uint32(notes[8:])
		nameEnd := 12 + alignUp(namesz)
		descEnd := nameEnd + alignUp(descsz)
		if nameEnd+descsz > uint64(len(notes)) {
			break
		}
		name := notes[12 : 12+namesz]
		if typ == ntGNUBuildID && namesz == 4 && string(name) == "GNU\x00" && descsz > 0 && descsz <= maxBuildID {
			var id elfIdentity
			copy(id.buildID[:], notes[nameEnd:nameEnd+descsz])
			id.hasBuildID = true
			return id, true
		}
		notes = notes[min(descEnd, uint64(len(notes))):]
	}
	return elfIdentity{}, false
}

// loadSymbols reads the PT_LOAD segments, the function symbols and, for a
// Go binary, the pclntab. A malformed part is left out; it never panics.
func loadSymbols(f *elf.File, r io.ReaderAt, size int64) (syms *symbols, err error) {
	syms = &symbols{}
	defer func() {
		if p := recover(); p != nil {
			syms, err = &symbols{loads: syms.loads}, fmt.Errorf("%w: %v", errBadELF, p)
		}
	}()
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Filesz > 0 && p.Off+p.Filesz > p.Off {
			syms.loads = append(syms.loads, segment{off: p.Off, filesz: p.Filesz, vaddr: p.Vaddr})
		}
	}
	var errs []error
	for _, typ := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
		funcs, err := readFuncs(f, typ, size, maxSymbols-len(syms.funcs))
		if err != nil {
			errs = append(errs, err)
		}
		syms.funcs = append(syms.funcs, funcs...)
	}
	syms.funcs = sortFuncs(syms.funcs)
	syms.gotab, syms.goinl, err = readGoTable(f, r, size)
	if err != nil {
		errs = append(errs, err)
	}
	return syms, errors.Join(errs...)
}

// readFuncs reads the function symbols of the first section of type typ,
// after checking that it and its string table fit in the file and limits.
func readFuncs(f *elf.File, typ elf.SectionType, size int64, room int) ([]symbol, error) {
	s := sectionOfType(f, typ)
	if s == nil || room <= 0 {
		return nil, nil
	}
	if !fits(s, size) || int(s.Link) >= len(f.Sections) || !fits(f.Sections[s.Link], size) {
		return nil, fmt.Errorf("%w: %s too large or beyond the file", errBadELF, typ)
	}
	var all []elf.Symbol
	var err error
	if typ == elf.SHT_SYMTAB {
		all, err = f.Symbols()
	} else {
		all, err = f.DynamicSymbols()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errBadELF, typ, err)
	}
	var out []symbol
	for _, s := range all {
		t := elf.ST_TYPE(s.Info)
		if (t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC) || s.Size == 0 || s.Section == elf.SHN_UNDEF || s.Name == "" || s.Value+s.Size < s.Value {
			continue
		}
		if len(out) >= room {
			break
		}
		out = append(out, symbol{value: s.Value, size: s.Size, name: s.Name, bind: elf.ST_BIND(s.Info)})
	}
	return out, nil
}

func sectionOfType(f *elf.File, typ elf.SectionType) *elf.Section {
	for _, s := range f.Sections {
		if s.Type == typ {
			return s
		}
	}
	return nil
}

// fits reports whether a section's bytes lie in the file and the limit.
func fits(s *elf.Section, size int64) bool {
	if s.Type == elf.SHT_NOBITS {
		return true
	}
	return s.Size <= maxSectionBytes && s.Offset <= uint64(size) && s.Size <= uint64(size)-s.Offset
}

// sortFuncs sorts the symbols by address and drops aliases (same address
// and size), keeping the global name over a weak or local one.
func sortFuncs(funcs []symbol) []symbol {
	rank := func(b elf.SymBind) int {
		switch b {
		case elf.STB_GLOBAL:
			return 0
		case elf.STB_WEAK:
			return 1
		}
		return 2
	}
	slices.SortFunc(funcs, func(a, b symbol) int {
		if a.value != b.value {
			return cmpU64(a.value, b.value)
		}
		if a.size != b.size {
			return cmpU64(b.size, a.size)
		}
		if ra, rb := rank(a.bind), rank(b.bind); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.name, b.name)
	})
	return slices.CompactFunc(funcs, func(a, b symbol) bool { return a.value == b.value && a.size == b.size })
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// maxNested is how far back from the nearest lower symbol a lookup looks
// for an enclosing one (a symbol nested in another, as in some assembly).
const maxNested = 8

// funcAt returns the function symbol whose [value, value+size) holds addr.
func (s *symbols) funcAt(addr uint64) (string, bool) {
	i, _ := slices.BinarySearchFunc(s.funcs, addr, func(sym symbol, a uint64) int {
		if sym.value <= a {
			return -1
		}
		return 1
	})
	// i is the first symbol above addr.
	for j := i - 1; j >= 0 && j >= i-maxNested; j-- {
		if f := &s.funcs[j]; addr-f.value < f.size {
			return f.name, true
		}
	}
	return "", false
}

// vaddr converts a file offset to the address the file's symbols use.
func (s *symbols) vaddr(off uint64) (uint64, bool) {
	for _, l := range s.loads {
		if off >= l.off && off-l.off < l.filesz {
			return l.vaddr + (off - l.off), true
		}
	}
	return 0, false
}

// goPosition returns the Go function, file and line of addr from the
// pclntab. For inlined code (inlined set), the function is the one the code
// was compiled into and the file and line are those of the instruction, in
// the inlined function (debug/gosym does not expand inlining).
func (s *symbols) goPosition(addr uint64) (fn, file string, line int, inlined, ok bool) {
	if s.gotab == nil {
		return "", "", 0, false, false
	}
	defer func() {
		if recover() != nil {
			fn, file, line, inlined, ok = "", "", 0, false, false
		}
	}()
	file, line, f := s.gotab.PCToLine(addr)
	if f == nil || f.Name == "" || addr < f.Entry || addr >= f.End {
		return "", "", 0, false, false
	}
	inlined, _ = s.goinl.inlined(addr)
	return f.Name, file, line, inlined, true
}

// pclntab magic numbers of Go 1.18 and 1.20 on (little-endian).
var goMagics = [][]byte{{0xf0, 0xff, 0xff, 0xff, 0, 0}, {0xf1, 0xff, 0xff, 0xff, 0, 0}}

// readGoTable reads a Go binary's function table: from .gopclntab (kept by
// -ldflags=-s -w), or, in a file whose section headers are gone, from the
// pclntab header found by its magic in a read-only segment.
func readGoTable(f *elf.File, r io.ReaderAt, size int64) (*gosym.Table, *goInlineIndex, error) {
	var data []byte
	var text uint64
	if s := f.Section(".text"); s != nil {
		text = s.Addr
	}
	if s := f.Section(".gopclntab"); s != nil {
		if !fits(s, size) {
			return nil, nil, fmt.Errorf("%w: .gopclntab too large or beyond the file", errBadELF)
		}
		data = readAt(r, s.Offset, s.Size, size, maxSectionBytes)
	} else if f.Section(".text") == nil {
		data, text = findPclntab(f, r, size)
	}
	if len(data) < 16 || text == 0 {
		return nil, nil, nil
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: pclntab: %w", errBadELF, err)
	}
	return tab, newGoInlineIndex(data, text), nil
}

// findPclntab looks for a Go 1.18+ pclntab header in the read-only PT_LOAD
// segments, checking its layout; text is the header's runtime.text, which
// is right in a position-dependent executable (0 in a PIE: not used).
func findPclntab(f *elf.File, r io.ReaderAt, size int64) (data []byte, text uint64) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&(elf.PF_X|elf.PF_W) != 0 {
			continue
		}
		seg := readAt(r, p.Off, p.Filesz, size, maxSectionBytes)
		for _, magic := range goMagics {
			for off := 0; ; {
				i := bytes.Index(seg[off:], magic)
				if i < 0 {
					break
				}
				h := seg[off+i:]
				off += i + 1
				if len(h) < 8+8*8 || (h[6] != 1 && h[6] != 2 && h[6] != 4) || h[7] != 8 {
					continue
				}
				if t := binary.LittleEndian.Uint64(h[8+2*8:]); t != 0 {
					return h, t
				}
			}
		}
	}
	return nil, 0
}

package image

import (
	"bytes"
	"debug/elf"
	"fmt"
)

// elfArch maps ELF machines to the GOARCH (and OCI architecture) names the
// image may be built for.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
}

// CheckStatic returns the architecture of a Linux ELF executable, or an
// error unless it is statically linked: a static binary has no program
// interpreter (PT_INTERP) and needs no shared library (DT_NEEDED), so it runs
// in an image that holds nothing else.
func CheckStatic(bin []byte) (string, error) {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return "", fmt.Errorf("read elf: %w", err)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("elf type %v is not an executable", f.Type)
	}
	if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return "", fmt.Errorf("elf os abi %v is not linux", f.OSABI)
	}
	arch, ok := elfArch[f.Machine]
	if !ok {
		return "", fmt.Errorf("elf machine %v is not supported (amd64 or arm64)", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("not static: has a program interpreter (PT_INTERP); build with CGO_ENABLED=0")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return "", fmt.Errorf("read elf dynamic section: %w", err)
	}
	if len(libs) > 0 {
		return "", fmt.Errorf("not static: needs shared libraries %v (DT_NEEDED); build with CGO_ENABLED=0", libs)
	}
	return arch, nil
}

package symbolize

import (
	"encoding/hex"
	"path/filepath"
	"strconv"
	"testing"
)

// goProgram records its own call stack in syscallClose, as a BPF program
// would see it in a close() made there: the first address is inside
// syscallClose (the instruction pointer), then return addresses.
const goProgram = `package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
)

//go:noinline
func syscallClose() []uintptr {
	pcs := make([]uintptr, 3)
	runtime.Callers(1, pcs)
	return pcs
}

//go:noinline
func closeWithoutDraining() []uintptr {
	return syscallClose() // CALL-SITE
}

func main() {
	pcs := closeWithoutDraining() // MAIN-CALL
	fmt.Printf("pcs %x %x %x\n", pcs[0], pcs[1], pcs[2])
	frames := runtime.CallersFrames(pcs[1:])
	f, _ := frames.Next()
	fmt.Printf("runtime %s %s %d\n", f.Function, f.File, f.Line)
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadByte()
}
`

const goMod = "module example.com/closer\n\ngo 1.21\n"

func TestGoProgram(t *testing.T) {
	files := map[string]string{"main.go": goProgram, "go.mod": goMod}
	plain := build(t, files, "go", "build", "-o", "closer", ".")
	stripped := build(t, files, "go", "build", "-ldflags=-s -w", "-o", "closer", ".")
	for _, tc := range []struct{ name, dir string }{
		{"plain", plain},
		{"stripped -s -w", stripped},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, srcFile := filepath.Join(tc.dir, "closer"), filepath.Join(tc.dir, "main.go")
			c := start(t, bin)
			ip, ret1, ret2 := c.hex(t, "pcs", 1), c.hex(t, "pcs", 2), c.hex(t, "pcs", 3)
			// The runtime agrees with the source about the call site.
			if fn, file, line := c.value(t, "runtime", 1), c.value(t, "runtime", 2), c.value(t, "runtime", 3); fn != "main.closeWithoutDraining" || file != srcFile || line != strconv.Itoa(lineOf(t, goProgram, "CALL-SITE")) {
				t.Fatalf("the runtime says %s %s:%s", fn, file, line)
			}
			want := []Frame{
				{Func: "main.syscallClose", File: "runtime-extern", Line: -1, Module: bin, Inlined: true},
				{Func: "main.closeWithoutDraining", File: srcFile, Line: lineOf(t, goProgram, "CALL-SITE"), Module: bin},
				{Func: "main.main", File: srcFile, Line: lineOf(t, goProgram, "MAIN-CALL"), Module: bin},
			}
			id := gnuBuildID(t, bin)
			byIP := []RawFrame{{IP: ip}, {IP: ret1}, {IP: ret2}}
			byID := []RawFrame{kernelFrame(t, c.pid(), ip, id), kernelFrame(t, c.pid(), ret1, id), kernelFrame(t, c.pid(), ret2, id)}

			// The kernel gives instruction pointers for Go binaries (their
			// GNU build id is outside the PT_NOTE segment); both ways work.
			for mode, raw := range map[string][]RawFrame{"ip": byIP, "build id": byID} {
				s := New(Options{})
				got := s.Symbolize(c.pid(), raw)
				checkFrames(t, mode, got, want, byID, id)
			}

			// Learned while alive, symbolized after exit.
			s := New(Options{})
			s.Learn(c.pid())
			c.exit(t)
			for mode, raw := range map[string][]RawFrame{"ip after exit": byIP, "build id after exit": byID} {
				checkFrames(t, mode, s.Symbolize(c.pid(), raw), want, byID, id)
			}

			// Not learned before exit: what the kernel gave, nothing more.
			fresh := New(Options{})
			for i, f := range fresh.Symbolize(c.pid(), byIP) {
				if f != (Frame{Offset: byIP[i].IP}) || !f.Unknown() {
					t.Errorf("unlearned ip frame %d: %+v, want unknown with offset %#x", i, f, byIP[i].IP)
				}
			}
			for i, f := range fresh.Symbolize(c.pid(), byID) {
				if f != (Frame{Offset: byID[i].Offset, BuildID: hex.EncodeToString(id[:])}) {
					t.Errorf("unlearned build-id frame %d: %+v", i, f)
				}
			}
		})
	}
}

// checkFrames compares frames; the offsets and build id are those the
// kernel records (byID), whichever way the frames were given.
func checkFrames(t *testing.T, mode string, got, want []Frame, byID []RawFrame, id [20]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d frames, want %d", mode, len(got), len(want))
	}
	for i := range want {
		w := want[i]
		w.BuildID = hex.EncodeToString(id[:])
		w.Offset = byID[i].Offset
		if w.File == "runtime-extern" && filepath.Base(got[i].File) == "extern.go" {
			// The instruction pointer is in runtime.Callers, inlined.
			w.File, w.Line = got[i].File, got[i].Line
		}
		if got[i] != w {
			t.Errorf("%s: frame %d = %+v, want %+v", mode, i, got[i], w)
		}
	}
}

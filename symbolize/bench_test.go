package symbolize

import (
	"path/filepath"
	"testing"
)

// BenchmarkSymbolize measures a three-frame Go stack of a live process:
// cached (symbols loaded, maps learned) and uncached (a new Symbolizer:
// maps read, files opened, symbols loaded).
func BenchmarkSymbolize(b *testing.B) {
	files := map[string]string{"main.go": goProgram, "go.mod": goMod}
	dir := build(b, files, "go", "build", "-o", "closer", ".")
	c := start(b, filepath.Join(dir, "closer"))
	frames := []RawFrame{{IP: c.hex(b, "pcs", 1)}, {IP: c.hex(b, "pcs", 2)}, {IP: c.hex(b, "pcs", 3)}}
	b.Run("cached", func(b *testing.B) {
		s := New(Options{})
		s.Symbolize(c.pid(), frames)
		for b.Loop() {
			s.Symbolize(c.pid(), frames)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		for b.Loop() {
			s := New(Options{})
			s.Symbolize(c.pid(), frames)
			s.Close()
		}
	})
	b.Run("learn", func(b *testing.B) {
		s := New(Options{})
		s.Learn(c.pid())
		for b.Loop() {
			s.mu.Lock()
			s.learn(c.pid(), true)
			s.mu.Unlock()
		}
	})
}

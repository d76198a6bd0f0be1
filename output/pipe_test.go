package output

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFastWriterPipe: on a pipe, writes take the raw path and arrive whole
// and in order, also when they exceed what the pipe holds and the reader is
// slow.
func TestFastWriterPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fw := fastWriter(w)
	if _, ok := fw.(*pipeWriter); !ok {
		t.Fatalf("fastWriter(pipe) = %T, want *pipeWriter", fw)
	}
	var want bytes.Buffer
	for i := range 1 << 16 {
		want.WriteString("line ")
		want.WriteByte(byte('a' + i%26))
		want.WriteByte('\n')
	}
	got := make(chan []byte)
	go func() {
		var b bytes.Buffer
		buf := make([]byte, 4096)
		for {
			time.Sleep(50 * time.Microsecond) // slower than the writer
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				got <- b.Bytes()
				return
			}
		}
	}()
	data := want.Bytes()
	for len(data) > 0 {
		chunk := min(len(data), 100<<10) // more than a 64 KiB pipe holds
		n, err := fw.Write(data[:chunk])
		if err != nil || n != chunk {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, chunk)
		}
		data = data[chunk:]
	}
	fw.(*pipeWriter).f.Close()
	w.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("read %d bytes, want the %d written, in order", len(b), want.Len())
	}
}

// TestFastWriterBrokenPipe: once the reader is gone, a write fails as a
// write of the original file does.
func TestFastWriterBrokenPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fw := fastWriter(w)
	r.Close()
	if _, err := fw.Write([]byte("x\n")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("Write after the reader closed: %v, want EPIPE", err)
	}
}

// TestFastWriterOthers: anything but a pipe is written as it is.
func TestFastWriterOthers(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	for _, w := range []io.Writer{f, &buf} {
		if got := fastWriter(w); got != w {
			t.Errorf("fastWriter(%T) = %T, want the writer itself", w, got)
		}
	}
}

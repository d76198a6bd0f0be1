package output

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
)

// TestOutAbandonPipe: a write waiting on a full pipe that nobody reads
// fails once the grace has passed, its unwritten lines are counted, and
// later writes fail at once.
func TestOutAbandonPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	o := NewOut(w)
	if o.pipe == nil {
		t.Fatal("NewOut(pipe) does not take the pipe path")
	}
	line := append(bytes.Repeat([]byte("x"), 99), '\n')
	batch := bytes.Repeat(line, 10000) // 1 MB: more than the pipe holds
	done := make(chan error, 1)
	var n int
	go func() {
		var err error
		n, err = o.Write(batch)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("write to a full pipe returned %v before it was abandoned", err)
	case <-time.After(100 * time.Millisecond):
	}
	start := time.Now()
	o.Abandon(200 * time.Millisecond)
	select {
	case err := <-done:
		if !errors.Is(err, ErrAbandoned) {
			t.Fatalf("write error %v, want ErrAbandoned", err)
		}
		if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
			t.Errorf("abandoned after %v, want about 200 ms", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write still blocked 5 s after Abandon(200ms)")
	}
	whole := uint64(n / len(line))
	if got, want := o.LinesLost(), 10000-whole; got != want {
		t.Errorf("LinesLost = %d, want %d (%d bytes written)", got, want, n)
	}
	if _, err := o.Write(line); !errors.Is(err, ErrAbandoned) {
		t.Errorf("write after abandon: %v, want ErrAbandoned", err)
	}
	if got, want := o.LinesLost(), 10001-whole; got != want {
		t.Errorf("LinesLost after one more line = %d, want %d", got, want)
	}
	if !errors.Is(o.Err(), ErrAbandoned) {
		t.Errorf("Err = %v", o.Err())
	}
}

// TestOutAbandonFile: elsewhere, writes go on until the grace ends, then
// fail without being tried.
func TestOutAbandonFile(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o := NewOut(f)
	o.Abandon(50 * time.Millisecond)
	if _, err := o.Write([]byte("a\n")); err != nil {
		t.Fatalf("write within the grace: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := o.Write([]byte("b\nc\n")); !errors.Is(err, ErrAbandoned) {
		t.Fatalf("write after the grace: %v, want ErrAbandoned", err)
	}
	data, _ := os.ReadFile(f.Name())
	if string(data) != "a\n" || o.LinesLost() != 2 {
		t.Errorf("file %q, %d lines lost; want \"a\\n\", 2", data, o.LinesLost())
	}
}

// failingSink fails from the nth Write on.
type failingSink struct{ n, writes int }

func (f *failingSink) Write(*collector.Event) error {
	f.writes++
	if f.writes >= f.n {
		return errors.New("broken")
	}
	return nil
}
func (f *failingSink) Flush() error { return nil }

func TestCounted(t *testing.T) {
	s := &failingSink{n: 3}
	c := NewCounted(s)
	for range 10 {
		_ = c.Write(&collector.Event{})
	}
	if s.writes != 3 || c.Refused() != 7 || c.Err() == nil || c.Flush() == nil {
		t.Errorf("writes %d, refused %d, err %v; want 3, 7 and an error", s.writes, c.Refused(), c.Err())
	}
}

// TestOutAbandonTerminal: a terminal nobody reads (a stalled ssh session)
// is abandoned as a pipe is.
func TestOutAbandonTerminal(t *testing.T) {
	_, slave := testenv.OpenPTY(t)
	o := NewOut(slave)
	if o.pipe == nil {
		t.Fatal("NewOut(terminal) does not take the non-blocking path")
	}
	done := make(chan error, 1)
	go func() {
		_, err := o.Write(bytes.Repeat([]byte("0123456789abcdef\n"), 1<<16)) // 1 MB
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("write of 1 MB to an unread terminal returned %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	o.Abandon(100 * time.Millisecond)
	select {
	case err := <-done:
		if !errors.Is(err, ErrAbandoned) {
			t.Fatalf("write error %v, want ErrAbandoned", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write to the terminal still blocked 5 s after Abandon(100ms)")
	}
	if o.LinesLost() == 0 || o.LinesLost() > 1<<16 {
		t.Errorf("LinesLost = %d", o.LinesLost())
	}
}

// TestOutTerminalWrites: what goes to a terminal through its own
// description arrives whole.
func TestOutTerminalWrites(t *testing.T) {
	master, slave := testenv.OpenPTY(t)
	o := NewOut(slave)
	if _, err := o.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = master.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := master.Read(buf)
	if err != nil || string(buf[:n]) != "hello\r\n" {
		t.Errorf("terminal shows %q, %v; want \"hello\\r\\n\"", buf[:n], err)
	}
}

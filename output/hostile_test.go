package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

// hostileNames are command names any local user can give a process
// (prctl(PR_SET_NAME): up to 15 bytes, anything but NUL), and longer names
// as pod and container names could be.
var hostileNames = []string{
	"server", "", "-", "other", "(other)", "Web Content", "é", "日本語",
	"\xff", "\xfe\xff", "a\xc3", "\x1b[2J", "\x1b]0;owned\x07", "a\nb", "a\rb", "a\tb", "\x00", "\x7f",
	"\u0085", "\u2028", "\u202e", "\ufeff", `"quoted"`, `back\slash`, `\x1b`, "\"\\n", "line1\nPID  COMM",
	strings.Repeat("\xff", 15), strings.Repeat("\x1b", 15), "ok\x1b[31mred",
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"server", "server"},
		{"Web Content", "Web Content"},
		{"日本語", "日本語"},
		{"", `""`},
		{"-", "-"},
		{"\xff", `"\xff"`},
		{"\x1b[2J", `"\x1b[2J"`},
		{"a\nb", `"a\nb"`},
		{"a\tb", `"a\tb"`},
		{"\u202e", `"\u202e"`},
		{`"quoted"`, `"\"quoted\""`},
		{`back\slash`, `"back\\slash"`},
	}
	for _, tt := range tests {
		if got := Printable(tt.in); got != tt.want {
			t.Errorf("Printable(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// checkPrintable asserts that s is valid UTF-8 of printable characters
// only: no control byte, no line or paragraph separator, no bidi override.
func checkPrintable(t *testing.T, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s is not valid UTF-8: %q", what, s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			t.Fatalf("%s holds %U: %q", what, r, s)
		}
	}
}

// checkPrintableName asserts that p, Printable(name), is printable, and
// that name can be read back from it.
func checkPrintableName(t *testing.T, name, p string) {
	t.Helper()
	checkPrintable(t, "Printable("+strconv.Quote(name)+")", p)
	back := p
	if strings.HasPrefix(p, `"`) {
		var err error
		if back, err = strconv.Unquote(p); err != nil {
			t.Fatalf("Printable(%q) = %s: %v", name, p, err)
		}
	} else if strings.ContainsAny(p, `"\`) {
		t.Fatalf("Printable(%q) = %s: plain but holds a quote or backslash", name, p)
	}
	if back != name {
		t.Fatalf("Printable(%q) = %s reads back as %q", name, p, back)
	}
}

func FuzzPrintable(f *testing.F) {
	for _, s := range hostileNames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		checkPrintableName(t, name, Printable(name))
	})
}

// hostileEvent is an event whose every name is name.
func hostileEvent(kind collector.Kind, name string) collector.Event {
	ev := unreadEvent()
	ev.Kind, ev.Comm, ev.Thread, ev.Reason = kind, name, name, name
	ev.TID = ev.PID + 1 // a worker thread: the table names it too
	ev.Pod = &collector.PodInfo{Namespace: name, Name: name, UID: name, Container: name, ContainerID: name}
	return ev
}

// FuzzTableRow: whatever bytes the names hold, the table writes exactly one
// line per event (and one per hint), with no control bytes, and the command
// name column reads back as the name.
func FuzzTableRow(f *testing.F) {
	for _, s := range hostileNames {
		f.Add(s, uint8(collector.KindUnreadClose))
		f.Add(s, uint8(collector.KindDataAfterClose))
	}
	f.Add("\x1b[2J", uint8(collector.KindResetSent))
	f.Fuzz(func(t *testing.T, name string, kind uint8) {
		k := collector.Kind(kind % 9) // every kind, and one out of range
		ev := hostileEvent(k, name)
		var buf bytes.Buffer
		tab := NewTable(&buf)
		for range 2 {
			if err := tab.Write(&ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := tab.Flush(); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if !strings.HasSuffix(out, "\n") {
			t.Fatalf("output does not end a line: %q", out)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		want := 3 // header, two rows
		if k.Anomaly() {
			want++ // the hint, once
		}
		if len(lines) != want {
			t.Fatalf("%d lines, want %d: %q", len(lines), want, out)
		}
		for _, l := range lines {
			checkPrintable(t, "table line", l)
		}
		row := lines[1]
		if f := strings.Fields(row); len(f) < 3 || f[1] != "4242" {
			t.Fatalf("row %q: no pid column", row)
		}
		// The comm column starts after TIME and PID, right-aligned in 7.
		p := Printable(name)
		if got := row[len("10:30:00.123 ")+8:]; !strings.HasPrefix(got, p) {
			t.Fatalf("row %q: comm column does not start with %s", row, p)
		}
		checkPrintableName(t, name, p)
	})
}

// FuzzSummaryRow: whatever bytes a name holds, the exit summary has one
// printable row for it.
func FuzzSummaryRow(f *testing.F) {
	for _, s := range hostileNames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		s := NewSummary()
		ev := hostileEvent(collector.KindUnreadClose, name)
		s.Add(&ev)
		var buf bytes.Buffer
		reasons := collector.NewReasons(map[uint16]string{1: name})
		var c collector.Counters
		c.ResetReasons[1] = 1
		if err := s.Write(&buf, c, collector.Stats{}, reasons); err != nil {
			t.Fatal(err)
		}
		rows := 0
		for _, l := range strings.Split(buf.String(), "\n") {
			checkPrintable(t, "summary line", l)
			if strings.HasPrefix(l, "4242 ") {
				rows++
				if f := strings.Fields(l); !strings.Contains(l, " "+Printable(name)+" ") || f[len(f)-1] != "1" {
					t.Errorf("summary row %q: want comm %s and count 1", l, Printable(name))
				}
			}
		}
		if rows != 1 {
			t.Fatalf("%d summary rows for the process, want 1:\n%s", rows, buf.String())
		}
	})
}

// FuzzMachineLines: whatever bytes the names hold, NDJSON, the JSON log and
// the logfmt log each write exactly one line per event, which decodes to
// the names (JSON: invalid UTF-8 as U+FFFD, as encoding/json writes it;
// logfmt: exactly).
func FuzzMachineLines(f *testing.F) {
	for _, s := range hostileNames {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ev := hostileEvent(collector.KindUnreadClose, name)
		jsonName, _ := json.Marshal(name)
		var want string
		if err := json.Unmarshal(jsonName, &want); err != nil {
			t.Fatal(err)
		}

		var nd bytes.Buffer
		j := NewJSON(&nd)
		if err := j.Write(&ev); err != nil {
			t.Fatal(err)
		}
		if err := j.Flush(); err != nil {
			t.Fatal(err)
		}
		var rec Record
		checkJSONLine(t, "NDJSON", nd.Bytes(), &rec)
		if rec.Comm != want || rec.Thread != want || rec.Pod != want || rec.Container != want || rec.Reason != want {
			t.Fatalf("NDJSON names: %+v, want %q", rec, want)
		}

		var jl bytes.Buffer
		lw := NewLogWriter(&jl)
		l := NewJSONLog(slog.New(slog.NewJSONHandler(lw, nil)), lw)
		if err := l.Write(&ev); err != nil {
			t.Fatal(err)
		}
		if err := l.Flush(); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		checkJSONLine(t, "JSON log", jl.Bytes(), &m)
		if m["comm"] != want || want != "" && m["container"] != want {
			t.Fatalf("JSON log names: comm %q container %q, want %q", m["comm"], m["container"], want)
		}

		var lf bytes.Buffer
		if err := NewLog(slog.New(slog.NewTextHandler(&lf, nil))).Write(&ev); err != nil {
			t.Fatal(err)
		}
		line := lf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Fatalf("logfmt: not one line: %q", line)
		}
		kv, err := parseLogfmt(strings.TrimSuffix(line, "\n"))
		if err != nil {
			t.Fatalf("logfmt %q: %v", line, err)
		}
		for _, k := range []string{"comm", "reason", "namespace", "pod", "container"} {
			if v, ok := kv[k]; v != name || !ok && k == "comm" {
				t.Fatalf("logfmt %s = %q, want %q: %s", k, kv[k], name, line)
			}
		}
	})
}

// checkJSONLine asserts that b is exactly one line of JSON, decoded into v.
func checkJSONLine(t *testing.T, what string, b []byte, v any) {
	t.Helper()
	if bytes.Count(b, []byte("\n")) != 1 || !bytes.HasSuffix(b, []byte("\n")) {
		t.Fatalf("%s: not one line: %q", what, b)
	}
	if !utf8.Valid(b) {
		t.Fatalf("%s: not UTF-8: %q", what, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v: %q", what, err, b)
	}
}

// parseLogfmt reads slog's text handler line: key=value pairs separated by
// spaces, a value Go-quoted where it needs it. A key seen twice is an error.
func parseLogfmt(line string) (map[string]string, error) {
	kv := map[string]string{}
	for line != "" {
		k, rest, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \"") {
			return nil, errorf("bad key at %q", line)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return nil, errorf("value of %s: %v", k, err)
			}
			if v, err = strconv.Unquote(q); err != nil {
				return nil, err
			}
			rest = rest[len(q):]
		} else {
			v, rest, _ = strings.Cut(rest, " ")
			rest = " " + rest
			if rest == " " {
				rest = ""
			}
		}
		if _, dup := kv[k]; dup {
			return nil, errorf("key %s twice", k)
		}
		kv[k] = v
		switch {
		case rest == "":
		case strings.HasPrefix(rest, " "):
			rest = rest[1:]
		default:
			return nil, errorf("no space after %s at %q", k, rest)
		}
		line = rest
	}
	return kv, nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

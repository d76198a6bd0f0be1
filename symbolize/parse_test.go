package symbolize

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

func TestParsePerfMap(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []perfEntry
	}{
		{"plain", "1000 10 foo\n", []perfEntry{{0x1000, 0x10, "foo"}}},
		{"0x prefixes", "0x1000 0x20 Lcom/x/Y;::run\n", []perfEntry{{0x1000, 0x20, "Lcom/x/Y;::run"}}},
		{"name with spaces", "7f00 8 void Foo::bar(int, char)\n", []perfEntry{{0x7f00, 8, "void Foo::bar(int, char)"}}},
		{"crlf", "10 2 a\r\n", []perfEntry{{0x10, 2, "a"}}},
		{"no name", "1000 10\n1000 10 \n", nil},
		{"zero size", "1000 0 z\n", nil},
		{"not hex", "zz 10 a\n10 qq b\n", nil},
		{"wraps", "ffffffffffffffff 2 w\n", nil},
		{"bad then good", "garbage\n20 4 ok\n", []perfEntry{{0x20, 4, "ok"}}},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := parsePerfMap(strings.NewReader(tc.text)).entries
			if len(got) != len(tc.want) {
				t.Fatalf("%+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("entry %d: %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParsePerfMapTooLongLine(t *testing.T) {
	text := "10 4 first\n" + "20 4 " + strings.Repeat("x", maxPerfMapLine) + "\n30 4 after\n"
	pm := parsePerfMap(strings.NewReader(text))
	if len(pm.entries) != 1 || pm.entries[0].name != "first" {
		t.Errorf("%+v, want the lines before the long one", pm.entries)
	}
}

func TestParseMaps(t *testing.T) {
	text := `00400000-00401000 r--p 00000000 fd:01 1234                               /usr/bin/app
00401000-0049f000 r-xp 00001000 fd:01 1234                               /usr/bin/app
7f0000000000-7f0000001000 r-xp 00002000 00:1f 99                         /opt/my lib/with space.so (deleted)
7f0000100000-7f0000200000 rwxp 00000000 00:00 0 
7fff00000000-7fff00002000 r-xp 00000000 00:00 0                          [vdso]
nonsense
7f0000300000-7f0000200000 r-xp 00000000 00:00 0                          /backwards
`
	maps, anon, err := parseMaps(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{
		{start: 0x401000, end: 0x49f000, offset: 0x1000, dev: "fd:01", inode: 1234, path: "/usr/bin/app"},
		{start: 0x7f0000000000, end: 0x7f0000001000, offset: 0x2000, dev: "00:1f", inode: 99, path: "/opt/my lib/with space.so (deleted)"},
	}
	wantAnon := []mapping{
		{start: 0x7f0000100000, end: 0x7f0000200000, dev: "00:00"},
		{start: 0x7fff00000000, end: 0x7fff00002000, dev: "00:00", path: "[vdso]"},
	}
	if len(maps) != len(want) || len(anon) != len(wantAnon) {
		t.Fatalf("maps %+v anon %+v", maps, anon)
	}
	for i := range want {
		if maps[i] != want[i] {
			t.Errorf("mapping %d: %+v, want %+v", i, maps[i], want[i])
		}
	}
	for i := range wantAnon {
		if anon[i] != wantAnon[i] {
			t.Errorf("anonymous %d: %+v, want %+v", i, anon[i], wantAnon[i])
		}
	}
	if off := maps[0].fileOffset(0x401234); off != 0x1234 {
		t.Errorf("file offset %#x, want 0x1234", off)
	}
}

func TestParseStartTime(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want uint64
		ok   bool
	}{
		{"1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0", 5, true},
		{"2 (a) b) (c) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 77 0 0", 77, true},
		{"3 (short) S 0 1", 0, false},
		{"no parens", 0, false},
		{"4 (x) S 0 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 -5 0 0", 0, false},
	} {
		got, err := parseStartTime([]byte(tc.stat))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %d, %v; want %d, ok %v", tc.stat, got, err, tc.want, tc.ok)
		}
	}
	// The test's own stat parses.
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Skipf("skipped: no /proc/self/stat: %v", err)
	}
	if _, err := parseStartTime(self); err != nil {
		t.Error(err)
	}
}

func TestParseNSpid(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   uint32
		ok     bool
	}{
		{"Name:\tjava\nNSpid:\t4711\n", 4711, true},
		{"NSpid:\t4711\t1\n", 1, true},
		{"NSpid:\t4711\t0\n", 0, false},
		{"NSpid:\n", 0, false},
		{"Name:\tx\n", 0, false},
	} {
		got, ok := parseNSpid([]byte(tc.status))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %d %v, want %d %v", tc.status, got, ok, tc.want, tc.ok)
		}
	}
}

func TestFindBuildID(t *testing.T) {
	note := func(name string, typ uint32, desc []byte) []byte {
		var b bytes.Buffer
		le := func(v uint32) { b.Write([]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}) }
		le(uint32(len(name)))
		le(uint32(len(desc)))
		le(typ)
		b.WriteString(name)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		b.Write(desc)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		return b.Bytes()
	}
	id16 := bytes.Repeat([]byte{0xab}, 16)
	var want16 [20]byte
	copy(want16[:], id16)
	for _, tc := range []struct {
		name  string
		notes []byte
		want  [20]byte
		ok    bool
	}{
		{"after a Go note", append(note("Go\x00\x00", 4, []byte("abcd")), note("GNU\x00", 3, id16)...), want16, true},
		{"too long", note("GNU\x00", 3, bytes.Repeat([]byte{1}, 21)), [20]byte{}, false},
		{"wrong owner", note("GNX\x00", 3, id16), [20]byte{}, false},
		{"truncated", note("GNU\x00", 3, id16)[:20], [20]byte{}, false},
		{"empty desc", note("GNU\x00", 3, nil), [20]byte{}, false},
	} {
		id, ok := findBuildID(binary.LittleEndian, tc.notes, 4)
		if ok != tc.ok || id.buildID != tc.want {
			t.Errorf("%s: %x %v, want %x %v", tc.name, id.buildID, ok, tc.want, tc.ok)
		}
	}
}

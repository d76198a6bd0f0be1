package symbolize

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
)

// Limits on a perf map (/tmp/perf-PID.map), written by the process itself:
// untrusted, and it grows as long as the JIT compiles.
const (
	maxPerfMapBytes   = 64 << 20
	maxPerfMapEntries = 1 << 20
	maxPerfMapLine    = 4096
)

// perfEntry is one "START SIZE name" line of a perf map.
type perfEntry struct {
	start, size uint64
	name        string
}

// perfMap is a parsed perf map, in file order.
type perfMap struct {
	entries []perfEntry
}

// parsePerfMap parses the perf map format that JIT runtimes write for perf:
// one "START SIZE symbol name" line per compiled function, START and SIZE
// in hex (with or without 0x), the name being the rest of the line. Lines
// that don't parse are skipped, as perf does.
func parsePerfMap(r io.Reader) *perfMap {
	pm := &perfMap{}
	sc := bufio.NewScanner(io.LimitReader(r, maxPerfMapBytes))
	sc.Buffer(make([]byte, 0, 4096), maxPerfMapLine)
	for sc.Scan() && len(pm.entries) < maxPerfMapEntries {
		if e, ok := parsePerfMapLine(sc.Bytes()); ok {
			pm.entries = append(pm.entries, e)
		}
	}
	// A line longer than the limit ends the scan: what was read is kept.
	return pm
}

func parsePerfMapLine(line []byte) (perfEntry, bool) {
	line = bytes.TrimRight(line, "\r")
	startField, rest, ok := bytes.Cut(line, []byte{' '})
	if !ok {
		return perfEntry{}, false
	}
	sizeField, name, ok := bytes.Cut(rest, []byte{' '})
	if !ok || len(name) == 0 {
		return perfEntry{}, false
	}
	start, err1 := parseHex(startField)
	size, err2 := parseHex(sizeField)
	if err1 != nil || err2 != nil || size == 0 || start+size < start {
		return perfEntry{}, false
	}
	return perfEntry{start: start, size: size, name: string(name)}, true
}

func parseHex(b []byte) (uint64, error) {
	b = bytes.TrimPrefix(bytes.TrimPrefix(b, []byte("0x")), []byte("0X"))
	return strconv.ParseUint(string(b), 16, 64)
}

// lookup returns the name of the function that holds ip. Code addresses are
// reused as a JIT recompiles, so the latest line that holds ip wins.
func (pm *perfMap) lookup(ip uint64) (string, bool) {
	for i := len(pm.entries) - 1; i >= 0; i-- {
		e := &pm.entries[i]
		if ip >= e.start && ip-e.start < e.size {
			return e.name, true
		}
	}
	return "", false
}

package symbolize

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Limits on what is read from /proc: a process with a huge address space
// (a JVM maps thousands of regions) still fits, a hostile or broken file
// cannot make the symbolizer read without end.
const (
	maxMapsBytes  = 8 << 20
	maxMappings   = 1 << 16
	maxStatBytes  = 4 << 10
	maxStatusSize = 64 << 10
)

// mapping is one executable, file-backed region of /proc/PID/maps.
type mapping struct {
	start, end uint64 // [start, end) in the process's address space
	offset     uint64 // file offset of start
	dev        string // "major:minor", as the kernel prints it
	inode      uint64
	path       string // the file's path in the process's mount namespace
	mod        moduleKey
	hasMod     bool // mod was resolved (the file was opened and read)
}

// fileOffset returns the file offset of ip in m, as the kernel's build-id
// stack map computes it: ip - vm_start + vm_pgoff<<PAGE_SHIFT.
func (m *mapping) fileOffset(ip uint64) uint64 { return ip - m.start + m.offset }

// parseMaps reads the executable file mappings of a /proc/PID/maps text.
// Lines it cannot parse are skipped; anonymous and special regions ([vdso],
// [heap], memfd:...) are not file mappings and are left out. It reports
// anonymous executable regions through anonExec (JIT code lives there).
func parseMaps(r io.Reader) (maps []mapping, anonExec []mapping, err error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxMapsBytes))
	sc.Buffer(make([]byte, 0, 4096), 8192)
	for sc.Scan() {
		if len(maps)+len(anonExec) >= maxMappings {
			break
		}
		m, exec, ok := parseMapsLine(sc.Bytes())
		if !ok || !exec {
			continue
		}
		if strings.HasPrefix(m.path, "/") {
			maps = append(maps, m)
		} else {
			anonExec = append(anonExec, m)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read maps: %w", err)
	}
	return maps, anonExec, nil
}

// parseMapsLine parses "start-end perms offset dev inode [path]". exec is
// true when the region is executable.
func parseMapsLine(line []byte) (m mapping, exec, ok bool) {
	fields := make([][]byte, 0, 6)
	rest := line
	for len(fields) < 5 {
		rest = bytes.TrimLeft(rest, " ")
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			if len(rest) == 0 {
				return m, false, false
			}
			fields = append(fields, rest)
			rest = nil
			continue
		}
		fields = append(fields, rest[:i])
		rest = rest[i:]
	}
	if len(fields) < 5 {
		return m, false, false
	}
	addr, perms, off, dev, ino := fields[0], fields[1], fields[2], fields[3], fields[4]
	dash := bytes.IndexByte(addr, '-')
	if dash < 0 || len(perms) != 4 {
		return m, false, false
	}
	var err error
	if m.start, err = strconv.ParseUint(string(addr[:dash]), 16, 64); err != nil {
		return m, false, false
	}
	if m.end, err = strconv.ParseUint(string(addr[dash+1:]), 16, 64); err != nil || m.end <= m.start {
		return m, false, false
	}
	if m.offset, err = strconv.ParseUint(string(off), 16, 64); err != nil {
		return m, false, false
	}
	if m.inode, err = strconv.ParseUint(string(ino), 10, 64); err != nil {
		return m, false, false
	}
	m.dev = string(dev)
	// The path is the rest of the line after the padding; it may contain
	// spaces, and a deleted file ends in " (deleted)".
	m.path = strings.TrimLeft(string(rest), " ")
	return m, perms[2] == 'x', true
}

// readBounded reads at most limit bytes of a file.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// parseStartTime returns the start time (field 22, in clock ticks since
// boot) of a /proc/PID/stat text. With the pid it identifies a process:
// pids are reused, start times of the same pid are not.
func parseStartTime(stat []byte) (uint64, error) {
	// comm (field 2) may hold any byte, ')' included: the fields after it
	// start after the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name")
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("stat: %d fields", len(fields)+2)
	}
	t, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stat: start time: %w", err)
	}
	return t, nil
}

// parseNSpid returns the process's pid in its own pid namespace (the last
// value of NSpid in /proc/PID/status), which is the pid a JIT runtime in a
// container writes into the name of its perf map. ok is false without it.
func parseNSpid(status []byte) (uint32, bool) {
	for line := range bytes.SplitSeq(status, []byte{'\n'}) {
		rest, found := bytes.CutPrefix(line, []byte("NSpid:"))
		if !found {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.ParseUint(f[len(f)-1], 10, 32)
		if err != nil || n == 0 {
			return 0, false
		}
		return uint32(n), true
	}
	return 0, false
}

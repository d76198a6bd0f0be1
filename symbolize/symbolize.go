// Package symbolize turns user stack frames captured by a BPF stack map in
// build-id mode into functions, files and lines.
//
// Each frame the kernel records is either a build id and a file offset, or,
// when the kernel could not read the file's build id, the raw instruction
// pointer. The build id names the file for good, even after the process has
// exited; an instruction pointer means something only with the process's
// mappings. The Symbolizer learns both from /proc: the mappings of a process
// (Learn, best called as soon as an event of the process arrives), and, for
// each mapped file, its GNU build id, program headers and symbols, opened
// through /proc/PID/map_files or /proc/PID/root so that files of containers
// and deleted files are found. Symbols come from .symtab and .dynsym, and for
// Go binaries from the pclntab (function, file and line, even in binaries
// stripped with -ldflags=-s -w).
//
// A frame that cannot be resolved keeps what is known for sure (module,
// offset, build id) and no function: the symbolizer never guesses.
//
// Everything read (maps, ELF files, perf maps) is untrusted input: reads are
// bounded and malformed files yield no symbols, never a panic. Names in the
// frames are the files' bytes: escape them before printing.
package symbolize

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpclose-trace/tcpclose-trace/internal/lru"
)

// Frame is one symbolized stack frame.
//
// A frame in a file has Module (the file's path in the process's mount
// namespace, as /proc/PID/maps shows it), Offset (the file offset) and, if
// the file has one, BuildID (hex); Func, File and Line when the file's
// symbols hold the address. A JIT frame has JIT set, Offset the instruction
// pointer and Func the name from the process's perf map, or "[jit]". A frame
// about which nothing is known (a process that exited before its mappings
// were learned) has an empty Module, JIT false and Offset the instruction
// pointer.
type Frame struct {
	Func    string
	File    string
	Line    int
	Module  string
	Offset  uint64
	BuildID string
	JIT     bool
	// Inlined is set when File and Line are those of code that a Go
	// compiler inlined into Func: the position is in the inlined function,
	// whose name is not given (Go binaries of 1.20 on tell).
	Inlined bool
}

// Unknown reports whether nothing but the instruction pointer is known.
func (f Frame) Unknown() bool { return f.Module == "" && !f.JIT && f.Func == "" }

// String formats the frame on one line: "main.handle (server.go:88)",
// "close_without_draining (app+0x1139)", "libc.so.6+0x10f2a0", "[jit]
// 0x7f...", "[unknown] 0x...", and for a position in inlined Go code
// "main.handle (inlined conn.go:12)". Names are not escaped.
func (f Frame) String() string {
	switch {
	case f.Func != "" && f.File != "" && f.Inlined:
		return fmt.Sprintf("%s (inlined %s:%d)", f.Func, filepath.Base(f.File), f.Line)
	case f.Func != "" && f.File != "":
		return fmt.Sprintf("%s (%s:%d)", f.Func, filepath.Base(f.File), f.Line)
	case f.JIT && f.Func == "[jit]":
		return fmt.Sprintf("[jit] %#x", f.Offset)
	case f.JIT:
		return fmt.Sprintf("%s [jit]", f.Func)
	case f.Func != "":
		return fmt.Sprintf("%s (%s+%#x)", f.Func, filepath.Base(f.Module), f.Offset)
	case f.Module != "":
		return fmt.Sprintf("%s+%#x", filepath.Base(f.Module), f.Offset)
	}
	return fmt.Sprintf("[unknown] %#x", f.Offset)
}

// RawFrame is one frame as the kernel's build-id stack map gives it
// (struct bpf_stack_build_id): with HasBuildID (status BPF_STACK_BUILD_ID_VALID)
// the file's build id, zero-padded to 20 bytes, and the file offset;
// without (BPF_STACK_BUILD_ID_IP) the instruction pointer in IP.
type RawFrame struct {
	BuildID    [maxBuildID]byte
	HasBuildID bool
	Offset     uint64
	IP         uint64
}

// Options configures a Symbolizer. Zero values take the defaults.
type Options struct {
	// ProcRoot is where procfs is mounted; "/proc" by default (a daemon in
	// a container reads the host's, mounted elsewhere).
	ProcRoot string
	// MaxModules bounds the files kept (build id → path and symbols); the
	// least recently used is dropped first. Default 64.
	MaxModules int
	// MaxProcesses bounds the processes whose mappings are kept. Default 512.
	MaxProcesses int
}

// relearnAfter is how long the mappings Learn read stay fresh: a burst of
// events of one process reads its maps once.
const relearnAfter = time.Second

// Stats are the sizes and evictions of the caches.
type Stats struct {
	Modules, Processes                int
	ModuleEvictions, ProcessEvictions uint64
}

// Symbolizer resolves stack frames, caching files per build id and mappings
// per process, both bounded. It is safe for concurrent use; calls are
// serialized.
type Symbolizer struct {
	mu              sync.Mutex
	procRoot        string
	maxModules      int
	moduleEvictions uint64
	modules         *lru.Cache[moduleKey, *module]
	procs           *lru.Cache[uint32, *process]
	now             func() time.Time
}

// moduleKey identifies a file: by its build id, or, for a file without one,
// by its device, inode, size and change time.
type moduleKey struct {
	buildID [maxBuildID]byte
	dev     uint64
	inode   uint64
	size    int64
	ctime   int64
}

// module is a mapped file. Its file stays open until its symbols are loaded
// (on first use), so that a process that exits in between does not matter.
type module struct {
	path    string
	buildID string
	elf     *elf.File
	file    *os.File
	size    int64
	syms    *symbols
	err     error
}

// load returns the file's symbols, reading them once and closing the file.
func (m *module) load() *symbols {
	if m.syms == nil {
		if m.elf != nil {
			m.syms, m.err = loadSymbols(m.elf, m.file, m.size)
		} else {
			m.syms = &symbols{}
		}
		m.close()
	}
	return m.syms
}

func (m *module) close() {
	if m.file != nil {
		m.file.Close()
	}
	m.file, m.elf = nil, nil
}

// process is what was learned of one process.
type process struct {
	start   uint64 // start time: tells a reused pid
	learned time.Time
	maps    []mapping // executable file mappings
	anon    []mapping // other executable mappings ([vdso], JIT code)
	nspid   uint32
	perf    *perfMap
	perfID  [2]int64 // size and mtime of the perf map read
}

func (p *process) find(ip uint64, in []mapping) *mapping {
	for i := range in {
		if ip >= in[i].start && ip < in[i].end {
			return &in[i]
		}
	}
	return nil
}

// New returns a Symbolizer.
func New(opts Options) *Symbolizer {
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.MaxModules <= 0 {
		opts.MaxModules = 64
	}
	if opts.MaxProcesses <= 0 {
		opts.MaxProcesses = 512
	}
	return &Symbolizer{
		procRoot:   opts.ProcRoot,
		maxModules: opts.MaxModules,
		modules:    lru.New[moduleKey, *module](opts.MaxModules),
		procs:      lru.New[uint32, *process](opts.MaxProcesses),
		now:        time.Now,
	}
}

// Close releases the files held open. The Symbolizer still works after.
func (s *Symbolizer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.modules.Expire(func(m **module) bool { (*m).close(); return true })
}

// Stats returns the sizes and evictions of the caches.
func (s *Symbolizer) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Modules: s.modules.Len(), Processes: s.procs.Len(),
		ModuleEvictions: s.moduleEvictions, ProcessEvictions: s.procs.Evictions(),
	}
}

// Learn reads the mappings of a live process and opens the files it maps,
// so that its frames can be symbolized after it exits. Call it when an event
// of the process arrives. Mappings learned less than a second ago are
// reused.
func (s *Symbolizer) Learn(pid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.learn(pid, false)
}

// Symbolize resolves the frames of a stack of process pid, innermost first
// (the first frame is the instruction pointer, the others return
// addresses). It returns one Frame per RawFrame.
func (s *Symbolizer) Symbolize(pid uint32, frames []RawFrame) []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := call{pid: pid}
	out := make([]Frame, len(frames))
	for i, rf := range frames {
		if rf.HasBuildID {
			out[i] = s.buildIDFrame(&c, rf, i > 0)
		} else {
			out[i] = s.ipFrame(&c, rf.IP, i > 0)
		}
	}
	return out
}

// call is the state of one Symbolize call: the process's maps are read
// again at most once per call.
type call struct {
	pid       uint32
	relearned bool
}

func (s *Symbolizer) buildIDFrame(c *call, rf RawFrame, ret bool) Frame {
	f := Frame{Offset: rf.Offset, BuildID: hex.EncodeToString(rf.BuildID[:])}
	key := moduleKey{buildID: rf.BuildID}
	m, ok := s.modules.Get(key)
	if !ok && !c.relearned {
		// A file the process mapped since its maps were read, or one that
		// was dropped from the cache: read the maps again if it is alive.
		c.relearned = true
		s.learn(c.pid, true)
		m, ok = s.modules.Get(key)
	}
	if ok {
		f.Module = m.path
		fill(&f, m, rf.Offset, ret)
	}
	return f
}

func (s *Symbolizer) ipFrame(c *call, ip uint64, ret bool) Frame {
	f := Frame{Offset: ip}
	p, ok := s.procs.Get(c.pid)
	if !ok && !c.relearned {
		c.relearned = true
		p = s.learn(c.pid, true)
	}
	if p == nil {
		return f // exited before it was learned: unknown
	}
	m := p.find(ip, p.maps)
	if m == nil && p.find(ip, p.anon) == nil && !c.relearned && s.isLive(c.pid, p) {
		// Mapped since the maps were read (dlopen).
		c.relearned = true
		if q := s.learn(c.pid, true); q != nil {
			p, m = q, q.find(ip, q.maps)
		}
	}
	if m != nil {
		f.Module, f.Offset = m.path, m.fileOffset(ip)
		if !m.hasMod {
			return f
		}
		mod, ok := s.modules.Get(m.mod)
		if !ok && s.isLive(c.pid, p) {
			// Dropped from the cache: open the file again.
			s.openModule(s.procDir(c.pid), m)
			mod, ok = s.modules.Get(m.mod)
		}
		if ok {
			f.BuildID = mod.buildID
			fill(&f, mod, f.Offset, ret)
		}
		return f
	}
	a := p.find(ip, p.anon)
	if a != nil && strings.HasPrefix(a.path, "[") {
		// [vdso], [vsyscall]: named, not JIT code.
		f.Module, f.Offset = a.path, ip-a.start
		return f
	}
	if name, ok := s.perfLookup(c.pid, p, ip); ok {
		f.Func, f.JIT = name, true
		return f
	}
	if a != nil {
		f.Func, f.JIT = "[jit]", true
	}
	return f
}

// fill resolves the function (and file and line) of a file offset. A return
// address is looked up one byte back: in the call that returns there.
func fill(f *Frame, m *module, off uint64, ret bool) {
	syms := m.load()
	va, ok := syms.vaddr(off)
	if !ok {
		return
	}
	if ret && va > 0 {
		va--
	}
	if fn, file, line, inlined, ok := syms.goPosition(va); ok {
		f.Func, f.File, f.Line, f.Inlined = fn, file, line, inlined
		return
	}
	if name, ok := syms.funcAt(va); ok {
		f.Func = name
	}
}

func (s *Symbolizer) procDir(pid uint32) string {
	return filepath.Join(s.procRoot, strconv.FormatUint(uint64(pid), 10))
}

// startTime returns the start time of the live process pid.
func (s *Symbolizer) startTime(pid uint32) (uint64, bool) {
	stat, err := readBounded(filepath.Join(s.procDir(pid), "stat"), maxStatBytes)
	if err != nil {
		return 0, false
	}
	t, err := parseStartTime(stat)
	return t, err == nil
}

// isLive reports whether p is still running under its pid.
func (s *Symbolizer) isLive(pid uint32, p *process) bool {
	t, ok := s.startTime(pid)
	return ok && t == p.start
}

// learn reads the maps of the live process pid and opens the files it maps
// (unless it was learned recently and force is false). It returns nil if
// the process is gone or its maps can't be read.
func (s *Symbolizer) learn(pid uint32, force bool) *process {
	start, ok := s.startTime(pid)
	if !ok {
		return nil
	}
	old, had := s.procs.Get(pid)
	if had && old.start != start {
		old, had = nil, false // the pid was reused
	}
	now := s.now()
	if had && !force && now.Sub(old.learned) < relearnAfter {
		return old
	}
	dir := s.procDir(pid)
	text, err := readBounded(filepath.Join(dir, "maps"), maxMapsBytes)
	if err != nil {
		return nil
	}
	maps, anon, err := parseMaps(bytes.NewReader(text))
	if err != nil {
		return nil
	}
	p := &process{start: start, learned: now, maps: maps, anon: anon}
	if had {
		p.nspid, p.perf, p.perfID = old.nspid, old.perf, old.perfID
	} else if status, err := readBounded(filepath.Join(dir, "status"), maxStatusSize); err == nil {
		p.nspid, _ = parseNSpid(status)
	}
	opened := make(map[[2]uint64]*mapping)
	for i := range p.maps {
		m := &p.maps[i]
		if had {
			if o := old.find(m.start, old.maps); o != nil && o.start == m.start && o.end == m.end && o.offset == m.offset && o.inode == m.inode && o.dev == m.dev && o.path == m.path && o.hasMod {
				if _, cached := s.modules.Get(o.mod); cached {
					m.mod, m.hasMod = o.mod, true
					continue
				}
			}
		}
		file := [2]uint64{devNumber(m.dev), m.inode}
		if o, ok := opened[file]; ok && m.inode != 0 && o.path == m.path {
			m.mod, m.hasMod = o.mod, o.hasMod
			continue
		}
		s.openModule(dir, m)
		opened[file] = m
	}
	s.procs.Put(pid, p)
	return p
}

// openModule opens the file of m and adds it to the modules (or touches it
// if it is there), setting m.mod.
func (s *Symbolizer) openModule(dir string, m *mapping) {
	file, err := openMapped(dir, m)
	if err != nil {
		return
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return
	}
	ef, err := openELF(file)
	if err != nil {
		file.Close()
		return
	}
	id := readIdentity(ef, file, fi.Size())
	key := moduleKey{buildID: id.buildID}
	if !id.hasBuildID {
		st, _ := fi.Sys().(*unix.Stat_t)
		if st == nil {
			file.Close()
			return
		}
		key = moduleKey{dev: st.Dev, inode: st.Ino, size: st.Size, ctime: st.Ctim.Nano()}
	}
	m.mod, m.hasMod = key, true
	if _, ok := s.modules.Get(key); ok {
		file.Close()
		return
	}
	mod := &module{path: m.path, elf: ef, file: file, size: fi.Size()}
	if id.hasBuildID {
		mod.buildID = hex.EncodeToString(id.buildID[:])
	}
	s.addModule(key, mod)
}

// addModule adds a module, closing the one it evicts.
func (s *Symbolizer) addModule(key moduleKey, mod *module) {
	if s.modules.Len() >= s.maxModules {
		first := true
		s.modules.Expire(func(m **module) bool {
			if !first {
				return false
			}
			first = false
			(*m).close()
			return true
		})
		s.moduleEvictions++
	}
	s.modules.Put(key, mod)
}

// errNotRegular is returned for a path that is not a regular file (a FIFO
// would block, a device would never end).
var errNotRegular = errors.New("not a regular file")

// openMapped opens the file of a mapping: through /proc/PID/map_files (the
// very file mapped, even deleted or replaced since), else by its path in
// the process's root (a container's files), checked against the inode.
func openMapped(dir string, m *mapping) (*os.File, error) {
	f, err := openRegular(filepath.Join(dir, "map_files", fmt.Sprintf("%x-%x", m.start, m.end)))
	if err == nil {
		return f, nil
	}
	if strings.HasSuffix(m.path, " (deleted)") {
		return nil, err
	}
	f, err = openInRoot(filepath.Join(dir, "root"), m.path)
	if err != nil {
		return nil, err
	}
	if st, err := statOf(f); err != nil || (m.inode != 0 && st.Ino != m.inode) {
		f.Close()
		return nil, fmt.Errorf("%s: not the mapped file", m.path)
	}
	return f, nil
}

func statOf(f *os.File) (*unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

const openFlags = unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY

// openRegular opens a regular file without blocking.
func openRegular(path string) (*os.File, error) {
	fd, err := unix.Open(path, openFlags, 0)
	if err != nil {
		return nil, err
	}
	return checkRegular(os.NewFile(uintptr(fd), path))
}

// openInRoot opens path as the process whose root directory is root sees
// it: symbolic links are resolved inside that root (openat2
// RESOLVE_IN_ROOT), so that a container's link cannot point at the host's
// files.
func openInRoot(root, path string) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, path, &unix.OpenHow{
		Flags:   openFlags,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", path, root, err)
	}
	return checkRegular(os.NewFile(uintptr(fd), path))
}

func checkRegular(f *os.File) (*os.File, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", f.Name(), errNotRegular)
	}
	return f, nil
}

// perfLookup finds ip in the perf map the live process writes
// (/tmp/perf-PID.map in its root, PID in its own pid namespace), read
// again when it changed.
func (s *Symbolizer) perfLookup(pid uint32, p *process, ip uint64) (string, bool) {
	if p.nspid != 0 && s.isLive(pid, p) {
		s.readPerfMap(pid, p)
	}
	if p.perf == nil {
		return "", false
	}
	return p.perf.lookup(ip)
}

func (s *Symbolizer) readPerfMap(pid uint32, p *process) {
	f, err := openInRoot(filepath.Join(s.procDir(pid), "root"), fmt.Sprintf("/tmp/perf-%d.map", p.nspid))
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	id := [2]int64{fi.Size(), fi.ModTime().UnixNano()}
	if p.perf != nil && id == p.perfID {
		return
	}
	p.perf, p.perfID = parsePerfMap(f), id
}

// devNumber parses the "major:minor" of a maps line into one number.
func devNumber(dev string) uint64 {
	maj, min, ok := strings.Cut(dev, ":")
	if !ok {
		return 0
	}
	a, err1 := strconv.ParseUint(maj, 16, 32)
	b, err2 := strconv.ParseUint(min, 16, 32)
	if err1 != nil || err2 != nil {
		return 0
	}
	return unix.Mkdev(uint32(a), uint32(b))
}

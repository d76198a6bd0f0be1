package collector

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
	"github.com/tcpclose-trace/tcpclose-trace/symbolize"
)

// stackEntries is the stack map's size with Options.Stacks: distinct call
// sites kept. The kernel deduplicates stacks; a new one that finds its
// slot taken by another is not captured (the event says NoStack).
const stackEntries = 4096

// Frame layout of a build-id stack map value (struct bpf_stack_build_id).
const (
	stackFrameSize  = 32
	stackStatusOff  = 0
	stackBuildIDOff = 4
	stackAddrOff    = 24

	stackStatusEmpty   = 0
	stackStatusBuildID = 1
	stackStatusIP      = 2
)

// sizeStacks gives the stack map its room only when stacks are captured.
func sizeStacks(spec *ebpf.CollectionSpec, o *Options) {
	if ms, ok := spec.Maps[bpf.TcpcloseMapStacks]; ok && o.Stacks {
		ms.MaxEntries = stackEntries
	}
}

// StackFrames returns the frames of a captured user stack (Event.StackID),
// innermost first, as the kernel recorded them: a file's build id and
// offset where it could read the build id, else the instruction pointer.
func (c *Collector) StackFrames(id uint32) ([]symbolize.RawFrame, error) {
	if id == 0 {
		return nil, nil
	}
	var raw []byte
	if err := c.coll.Maps[bpf.TcpcloseMapStacks].Lookup(id-1, &raw); err != nil {
		return nil, fmt.Errorf("read stack %d: %w", id-1, err)
	}
	return decodeStack(raw), nil
}

// decodeStack parses a build-id stack map value; it stops at the first
// empty frame.
func decodeStack(raw []byte) []symbolize.RawFrame {
	var frames []symbolize.RawFrame
	for off := 0; off+stackFrameSize <= len(raw); off += stackFrameSize {
		f := raw[off : off+stackFrameSize]
		addr := binary.NativeEndian.Uint64(f[stackAddrOff:])
		switch int32(binary.NativeEndian.Uint32(f[stackStatusOff:])) {
		case stackStatusBuildID:
			rf := symbolize.RawFrame{HasBuildID: true, Offset: addr}
			copy(rf.BuildID[:], f[stackBuildIDOff:stackAddrOff])
			frames = append(frames, rf)
		case stackStatusIP:
			frames = append(frames, symbolize.RawFrame{IP: addr})
		default:
			return frames
		}
	}
	return frames
}

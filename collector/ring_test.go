//go:build !ringlib

package collector

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unsafe"
)

// fakeRing is a ring laid out as the kernel lays it out, in ordinary memory:
// the data area twice in a row, as the kernel maps its pages.
type fakeRing struct {
	r          *ring
	cons, prod uintptr
}

func newFakeRing(size int) *fakeRing {
	f := &fakeRing{}
	f.r = &ring{consPos: &f.cons, prodPos: &f.prod, data: make([]byte, 2*size), mask: uintptr(size - 1)}
	return f
}

// put writes a record of data with the given header flags at the producer
// position, in both copies, and returns where its header is.
func (f *fakeRing) put(data []byte, flags uint32) uintptr {
	size := len(f.r.data) / 2
	rec := make([]byte, ringHdrSize+(len(data)+7)&^7)
	binary.NativeEndian.PutUint32(rec, uint32(len(data))|flags)
	copy(rec[ringHdrSize:], data)
	at := f.prod
	for i, b := range rec {
		j := (int(at) + i) & (size - 1)
		f.r.data[j], f.r.data[j+size] = b, b
	}
	f.prod += uintptr(len(rec))
	return at
}

func (f *fakeRing) setHeader(at uintptr, v uint32) {
	size := len(f.r.data) / 2
	for _, j := range []int{int(at) & (size - 1), int(at)&(size-1) + size} {
		*(*uint32)(unsafe.Pointer(&f.r.data[j])) = v
	}
}

func TestRingNext(t *testing.T) {
	f := newFakeRing(256)
	want := [][]byte{[]byte("first"), bytes.Repeat([]byte("w"), 20), []byte("third record")}
	f.put(want[0], 0)
	f.put([]byte("thrown away"), ringDiscard)
	f.put(want[1], 0)
	busy := f.put(want[2], ringBusy)

	for i, w := range want[:2] {
		got, ok, err := f.r.next()
		if err != nil || !ok || !bytes.Equal(got, w) {
			t.Fatalf("record %d: %q, %v, %v; want %q", i, got, ok, err, w)
		}
	}
	if _, ok, err := f.r.next(); ok || err != nil {
		t.Fatalf("a record still being written was handed out (err %v)", err)
	}
	if f.cons != busy {
		t.Errorf("consumer position %d, want %d (the records before the busy one given back)", f.cons, busy)
	}
	f.setHeader(busy, uint32(len(want[2]))) // submitted
	got, ok, err := f.r.next()
	if err != nil || !ok || !bytes.Equal(got, want[2]) {
		t.Fatalf("the record once submitted: %q, %v, %v", got, ok, err)
	}
	if f.cons != busy {
		t.Errorf("consumer position moved past a record still handed out")
	}
	f.r.release()
	if f.cons != f.prod {
		t.Errorf("after release the consumer is at %d, want the producer's %d", f.cons, f.prod)
	}
	if _, ok, _ := f.r.next(); ok {
		t.Fatal("an empty ring handed out a record")
	}
}

// TestRingWraps: positions grow without bound, and a record across the end
// of the data area is read whole from the second copy.
func TestRingWraps(t *testing.T) {
	f := newFakeRing(64)
	for i := range 100 {
		rec := bytes.Repeat([]byte{byte(i)}, 1+i%30)
		f.put(rec, 0)
		got, ok, err := f.r.next()
		if err != nil || !ok || !bytes.Equal(got, rec) {
			t.Fatalf("record %d at %d: %v, %v, %v; want %v", i, f.cons, got, ok, err, rec)
		}
	}
}

func TestRingMalformed(t *testing.T) {
	f := newFakeRing(64)
	at := f.put([]byte("short"), 0)
	f.setHeader(at, 40) // claims more than the producer wrote
	if _, _, err := f.r.next(); err == nil {
		t.Fatal("a record beyond the producer position was accepted")
	}
}

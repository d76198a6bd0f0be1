package output

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/symbolize"
)

// TestFieldsFollowRecord: the encoders' field list is Record's, in order,
// with the same omitempty, so a field added to one is missed by nobody.
func TestFieldsFollowRecord(t *testing.T) {
	rt := reflect.TypeFor[Record]()
	if rt.NumField() != len(fields) {
		t.Fatalf("Record has %d fields, the encoder list %d", rt.NumField(), len(fields))
	}
	for i := range rt.NumField() {
		name, opts, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		omit := opts == "omitempty"
		if fields[i].name != name || fields[i].omitEmpty != omit {
			t.Errorf("field %d: Record has %q (omitempty %v), the encoder %q (omitempty %v)",
				i, name, omit, fields[i].name, fields[i].omitEmpty)
		}
	}
}

// encodingCases are events that exercise every field, every empty value and
// every escaping rule.
func encodingCases() []collector.Event {
	full := unreadEvent()
	full.UnsentBytes, full.RefusedBytes, full.SinceClose = 7, 100, 1500*time.Microsecond
	full.PeerFIN, full.ShutWR, full.TimeWait, full.NoSocket = true, true, true, true
	full.Reason = "TCP_ABORT_ON_DATA"
	v6 := unreadEvent()
	v6.LAddr, v6.RAddr = netip.MustParseAddr("fe80::1:2"), netip.MustParseAddr("2001:db8::ff")
	v6.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // no fraction
	v6.SinceClose = -3
	noOwner := unreadEvent()
	noOwner.OwnerKnown, noOwner.Kind, noOwner.State = false, collector.KindResetSent, 0
	noAddr := collector.Event{Time: at.Add(10 * time.Millisecond), Kind: collector.KindResetSent, Reason: "NO_SOCKET", NoSocket: true}
	odd := unreadEvent()
	odd.Comm = "a\"b\\c<d>&e\x00\x01\b\f\n\r\t\x7f\xff\u2028\u2029é"
	odd.Thread = "\x1b]0;t\x07\xfe"
	odd.Reason = string([]byte{0xe2, 0x82}) // truncated UTF-8
	odd.Time = time.Date(1999, 12, 31, 23, 59, 59, 100, time.FixedZone("X", 3600))
	stacked := unreadEvent()
	stacked.Stack = &collector.Stack{Frames: []symbolize.Frame{
		{Func: "main.closeWithoutDraining", File: "/src/app/main.go", Line: 88, Module: "/app/server", Offset: 0x4a1b2c, BuildID: "ab12"},
		{Func: "weird\"<&>\x00\xff", Module: "/lib/\u2028x.so", Offset: 7, Inlined: true},
		{Module: "", Offset: 0xffff},
		{Func: "[jit]", Offset: 1 << 63, JIT: true, Line: -1},
	}}
	far := unreadEvent()
	far.Time = time.Date(10001, 1, 1, 0, 0, 0, 5, time.UTC)
	inPod := unreadEvent()
	inPod.Pod = &collector.PodInfo{Namespace: "shop", Name: "web-0", UID: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
		Container: "nginx", ContainerID: "8d5c3e8f"}
	sandbox := unreadEvent()
	sandbox.Pod = &collector.PodInfo{Namespace: "shop", Name: "web-0", UID: "u"}
	return []collector.Event{full, v6, noOwner, noAddr, odd, far, inPod, sandbox, stacked, {}}
}

// randomEvent fills every field at random, strings from bytes that need escaping.
func randomEvent(r *rand.Rand) collector.Event {
	str := func() string {
		const alphabet = "abc\"\\<>&\x00\x1f\n\té\u2028\xff"
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	addr := func() netip.Addr {
		switch r.IntN(3) {
		case 0:
			return netip.Addr{}
		case 1:
			return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), 0, 1})
		}
		var a [16]byte
		for i := range a {
			a[i] = byte(r.Uint32())
		}
		return netip.AddrFrom16(a)
	}
	var pod *collector.PodInfo
	if r.IntN(2) == 0 {
		pod = &collector.PodInfo{Namespace: str(), Name: str(), UID: str(), Container: str(), ContainerID: str()}
	}
	return collector.Event{
		Time:         time.Unix(r.Int64N(4e9), r.Int64N(1e9)*int64(r.IntN(2))),
		Kind:         collector.Kind(r.IntN(10)),
		PID:          r.Uint32(),
		TID:          r.Uint32() * uint32(r.IntN(2)),
		Comm:         str(),
		Thread:       str(),
		CgroupID:     r.Uint64(),
		Netns:        r.Uint32(),
		LAddr:        addr(),
		LPort:        uint16(r.Uint32()),
		RAddr:        addr(),
		RPort:        uint16(r.Uint32()),
		Cookie:       r.Uint64(),
		State:        collector.State(r.IntN(14)),
		Reason:       str(),
		UnreadBytes:  r.Uint32(),
		UnsentBytes:  r.Uint32() * uint32(r.IntN(2)),
		RefusedBytes: r.Uint32(),
		OwnerKnown:   r.IntN(2) == 0,
		PeerFIN:      r.IntN(2) == 0,
		ShutWR:       r.IntN(2) == 0,
		TimeWait:     r.IntN(2) == 0,
		NoSocket:     r.IntN(2) == 0,
		SinceClose:   time.Duration(r.Int64N(1e12) - 1e11),
		Pod:          pod,
	}
}

// checkRecord asserts that the fast encoder writes exactly encoding/json's
// bytes for NewRecord(ev), and that both decode to the same Record.
func checkRecord(t *testing.T, e *encoder, ev *collector.Event) {
	t.Helper()
	var want bytes.Buffer
	if err := json.NewEncoder(&want).Encode(NewRecord(ev)); err != nil {
		t.Fatal(err)
	}
	got := e.appendRecord(nil, ev)
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("event %+v:\nfast: %s\njson: %s", ev, got, want.Bytes())
	}
	var a, b Record
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("fast output does not decode: %v: %s", err, got)
	}
	if err := json.Unmarshal(want.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("decoded records differ:\nfast: %+v\njson: %+v", a, b)
	}
}

func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	e := &encoder{html: true}
	for _, ev := range encodingCases() {
		checkRecord(t, e, &ev)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		ev := randomEvent(r)
		checkRecord(t, e, &ev)
	}
}

// FuzzAppendRecord: any comm, reason, time and numbers encode as encoding/json does.
func FuzzAppendRecord(f *testing.F) {
	f.Add("server", "NO_SOCKET", int64(1700000000123456789), uint32(80), uint64(7), true)
	f.Add("\xff<&>\"\\\u2028", "", int64(-1), uint32(0), uint64(0), false)
	e := &encoder{html: true}
	f.Fuzz(func(t *testing.T, comm, reason string, ns int64, u32 uint32, u64 uint64, flag bool) {
		ev := collector.Event{Time: time.Unix(0, ns), Kind: collector.Kind(u32 % 10), PID: u32, TID: u32 / 2,
			Comm: comm, Thread: reason + comm, CgroupID: u64, Netns: u32, Cookie: u64, State: collector.State(u32 % 13), Reason: reason,
			UnreadBytes: u32, SinceClose: time.Duration(ns), OwnerKnown: flag, PeerFIN: !flag, NoSocket: flag,
			LAddr: netip.AddrFrom4([4]byte{byte(u32), 1, 2, 3}), LPort: uint16(u32)}
		checkRecord(t, e, &ev)
	})
}

func BenchmarkAppendRecord(b *testing.B) {
	e := &encoder{html: true}
	ev := unreadEvent()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.Time = at.Add(time.Duration(i) * time.Microsecond)
		buf = e.appendRecord(buf[:0], &ev)
	}
}

// BenchmarkEncodingJSON is BenchmarkAppendRecord's baseline: the same
// record through encoding/json, into a buffer reset each time as
// appendRecord's is.
func BenchmarkEncodingJSON(b *testing.B) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	ev := unreadEvent()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ev.Time = at.Add(time.Duration(i) * time.Microsecond)
		out.Reset()
		_ = enc.Encode(NewRecord(&ev))
	}
}

// TestAppendUint: around every power of ten and at the extremes, as strconv.
func TestAppendUint(t *testing.T) {
	values := []uint64{0, 1, 9, math.MaxUint32, math.MaxUint64}
	for p := uint64(10); p <= 1e19; p *= 10 {
		values = append(values, p-1, p, p+1)
		if p > math.MaxUint64/10 {
			break
		}
	}
	for _, v := range values {
		prefix := []byte("x=")
		if got, want := string(appendUint(prefix, v)), "x="+strconv.FormatUint(v, 10); got != want {
			t.Errorf("appendUint(%d) = %q, want %q", v, got, want)
		}
	}
}

// TestKeysFit: every key is the field's name, quoted, and fits the
// fixed-size copy that appends it.
func TestKeysFit(t *testing.T) {
	for i := range fields {
		f := &fields[i]
		quote := ""
		if f.quoted() {
			quote = `"`
		}
		for _, k := range []struct {
			key  key
			name string
		}{{keys[i], f.name}, {logKeys[i], logName(f)}} {
			want := `,"` + k.name + `":` + quote
			if k.key.n > maxKey || string(k.key.b[:k.key.n]) != want {
				t.Errorf("key %q (%d bytes), want %q (at most %d)", k.key.b[:min(k.key.n, maxKey)], k.key.n, want, maxKey)
			}
		}
	}
}

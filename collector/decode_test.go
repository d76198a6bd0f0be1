package collector

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
)

// evf is a record's flags field holding fs.
func evf(fs ...bpf.TcpcloseEventFlag) uint16 {
	var flags bpf.TcpcloseEventFlag
	for _, f := range fs {
		flags |= f
	}
	return uint16(flags)
}

func rawComm(s string) (c [16]int8) {
	for i := range len(s) {
		c[i] = int8(s[i])
	}
	return c
}

func TestDecode(t *testing.T) {
	boot := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reasons := NewReasons(map[uint16]string{1: "NO_SOCKET", 8: "TCP_ABORT_ON_DATA"})
	v6 := netip.MustParseAddr("2001:db8::1").As16()
	mapped := netip.MustParseAddr("::ffff:10.1.2.3").As16()
	tests := []struct {
		name string
		raw  RawEvent
		want Event
	}{
		{
			name: "ipv4 unread close with owner",
			raw: RawEvent{TsNs: 1500, Kind: uint8(KindUnreadClose), Pid: 10, Tid: 11, CgroupId: 5,
				Netns: 4026531840, Family: 2, Lport: 80, Rport: 5555, Cookie: 77, State: 1,
				UnreadBytes: 1234, UnsentBytes: 9, Flags: evf(bpf.TcpcloseEventFlagEVF_OWNER),
				Laddr: [16]uint8{127, 0, 0, 1}, Raddr: [16]uint8{127, 0, 0, 2}, Comm: rawComm("server")},
			want: Event{Time: boot.Add(1500), Kind: KindUnreadClose, PID: 10, TID: 11, Comm: "server",
				CgroupID: 5, Netns: 4026531840, LAddr: netip.MustParseAddr("127.0.0.1"), LPort: 80,
				RAddr: netip.MustParseAddr("127.0.0.2"), RPort: 5555, Cookie: 77, State: 1,
				UnreadBytes: 1234, UnsentBytes: 9, OwnerKnown: true},
		},
		{
			name: "owner unknown leaves comm empty",
			raw: RawEvent{Kind: uint8(KindResetReceived), Family: 2, Pid: 0, Comm: rawComm("junk"),
				Flags: evf(bpf.TcpcloseEventFlagEVF_PROVISIONAL)},
			want: Event{Time: boot, Kind: KindResetReceived, LAddr: netip.AddrFrom4([4]byte{}),
				RAddr: netip.AddrFrom4([4]byte{}), provisional: true},
		},
		{
			name: "ipv6 reset sent with named reason and no socket",
			raw: RawEvent{Kind: uint8(KindResetSent), Family: 10, Laddr: v6, Raddr: v6, Reason: 1,
				Flags: evf(bpf.TcpcloseEventFlagEVF_REASON, bpf.TcpcloseEventFlagEVF_NO_SOCKET)},
			want: Event{Time: boot, Kind: KindResetSent, LAddr: netip.AddrFrom16(v6), RAddr: netip.AddrFrom16(v6),
				Reason: "NO_SOCKET", NoSocket: true},
		},
		{
			name: "v4-mapped ipv6 shown as ipv4",
			raw:  RawEvent{Kind: uint8(KindUndrainedClose), Family: 10, Laddr: mapped, Raddr: mapped, Flags: evf(bpf.TcpcloseEventFlagEVF_SHUT_WR, bpf.TcpcloseEventFlagEVF_PEER_FIN)},
			want: Event{Time: boot, Kind: KindUndrainedClose, LAddr: netip.MustParseAddr("10.1.2.3"),
				RAddr: netip.MustParseAddr("10.1.2.3"), ShutWR: true, PeerFIN: true},
		},
		{
			name: "reason without kernel names is unknown",
			raw:  RawEvent{Kind: uint8(KindDataAfterClose), Family: 2, Reason: uint16(ReasonUnknownSlot), RefusedBytes: 100, Flags: evf(bpf.TcpcloseEventFlagEVF_TIME_WAIT, bpf.TcpcloseEventFlagEVF_LOCAL_ABORT)},
			want: Event{Time: boot, Kind: KindDataAfterClose, LAddr: netip.AddrFrom4([4]byte{}),
				RAddr: netip.AddrFrom4([4]byte{}), Reason: "unknown", RefusedBytes: 100, TimeWait: true, localAbort: true},
		},
		{
			name: "reason number the kernel does not name",
			raw:  RawEvent{Kind: uint8(KindResetSent), Family: 2, Reason: 30, Flags: evf(bpf.TcpcloseEventFlagEVF_REASON)},
			want: Event{Time: boot, Kind: KindResetSent, LAddr: netip.AddrFrom4([4]byte{}),
				RAddr: netip.AddrFrom4([4]byte{}), Reason: "30"},
		},
	}
	d := Decoder{Reasons: reasons, BootTime: boot}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := unsafe.Slice((*byte)(unsafe.Pointer(&tt.raw)), RawEventSize)
			var got Event
			if err := d.Decode(raw, &got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Decode() =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecodeShortRecord(t *testing.T) {
	var d Decoder
	var ev Event
	if err := d.Decode(make([]byte, RawEventSize-1), &ev); err == nil {
		t.Fatal("Decode of a short record succeeded")
	}
}

func TestDecodeDoesNotAllocate(t *testing.T) {
	raw := RawEvent{Kind: uint8(KindUnreadClose), Family: 2, Flags: evf(bpf.TcpcloseEventFlagEVF_OWNER), Comm: rawComm("nginx")}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&raw)), RawEventSize)
	d := Decoder{}
	var ev Event
	_ = d.Decode(b, &ev) // interns the comm
	if n := testing.AllocsPerRun(100, func() { _ = d.Decode(b, &ev) }); n != 0 {
		t.Fatalf("Decode allocates %v times per event", n)
	}
}

// TestDecodeComms: each event gets its own command name, whether it repeats
// the previous event's (the memo) or not (the intern table).
func TestDecodeComms(t *testing.T) {
	d := Decoder{}
	for _, name := range []string{"nginx", "nginx", "curl", "nginx", "", "curl", "curl", "a-15-byte-name!"} {
		raw := RawEvent{Kind: uint8(KindUnreadClose), Family: 2, Flags: evf(bpf.TcpcloseEventFlagEVF_OWNER), Comm: rawComm(name)}
		var ev Event
		if err := d.Decode(unsafe.Slice((*byte)(unsafe.Pointer(&raw)), RawEventSize), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Comm != name {
			t.Errorf("comm %q decoded as %q", name, ev.Comm)
		}
	}
}

func TestKindNamesAreStable(t *testing.T) {
	want := []string{"unread_close", "undrained_close", "data_after_close", "abort_close",
		"reset_received", "reset_sent", "graceful_close"}
	for i, k := range Kinds() {
		if k.String() != want[i] {
			t.Errorf("Kinds()[%d] = %q, want %q", i, k, want[i])
		}
		if got, err := ParseKind(want[i]); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", want[i], got, err)
		}
	}
	if _, err := ParseKind("bogus"); err == nil {
		t.Error("ParseKind(bogus) succeeded")
	}
}

func BenchmarkDecode(b *testing.B) {
	raw := RawEvent{Kind: uint8(KindUnreadClose), Family: 10, Flags: evf(bpf.TcpcloseEventFlagEVF_OWNER, bpf.TcpcloseEventFlagEVF_REASON), Comm: rawComm("nginx")}
	buf := unsafe.Slice((*byte)(unsafe.Pointer(&raw)), RawEventSize)
	d := Decoder{Reasons: NewReasons(map[uint16]string{0: "NOT_SPECIFIED"})}
	var ev Event
	b.ReportAllocs()
	for b.Loop() {
		_ = d.Decode(buf, &ev)
	}
}

package selftest

import (
	"strings"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
)

func TestAgree(t *testing.T) {
	ev := func(k collector.Kind, timeWait bool) collector.Event {
		return collector.Event{Kind: k, TimeWait: timeWait}
	}
	tests := []struct {
		name      string
		events    []collector.Event
		mib       scenario.Counters
		bpfResets uint64
		want      string
	}{
		{name: "unread close", events: []collector.Event{ev(collector.KindUnreadClose, false), ev(collector.KindResetReceived, false)},
			mib: scenario.Counters{"TcpExtTCPAbortOnClose": 1, "TcpOutRsts": 1}, bpfResets: 1},
		{name: "data after close, full socket", events: []collector.Event{ev(collector.KindUndrainedClose, false), ev(collector.KindDataAfterClose, false)},
			mib: scenario.Counters{"TcpExtTCPAbortOnData": 1, "TcpOutRsts": 1}, bpfResets: 1},
		{name: "data after close, TIME_WAIT: not an AbortOnData", events: []collector.Event{ev(collector.KindDataAfterClose, true)},
			mib: scenario.Counters{"TcpOutRsts": 1}, bpfResets: 1},
		{name: "graceful", events: []collector.Event{ev(collector.KindGracefulClose, false)}, mib: scenario.Counters{}},
		{name: "missed unread close", events: nil, mib: scenario.Counters{"TcpExtTCPAbortOnClose": 1, "TcpOutRsts": 1}, bpfResets: 1,
			want: "unread_close events 0 but TcpExtTCPAbortOnClose +1; events with a reset sent 0 but TcpOutRsts +1"},
		{name: "reset not counted by the programs", events: []collector.Event{ev(collector.KindResetSent, false)},
			mib: scenario.Counters{"TcpOutRsts": 1}, bpfResets: 0, want: "resets counted by the programs 0 but TcpOutRsts +1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := agree(tt.events, tt.mib, tt.bpfResets); got != tt.want {
				t.Errorf("agree = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReportWrite(t *testing.T) {
	r := newReport([]string{"ipv4", "ipv6"})
	r.Cells[RowReasons]["ipv4"] = &Cell{Status: NotAvailable, Why: "no enum sk_rst_reason"}
	r.Cells[RowReasons]["ipv6"] = &Cell{Status: NotAvailable, Why: "no enum sk_rst_reason"}
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !r.OK() || !strings.Contains(b.String(), "n/a reset reasons/ipv4, reset reasons/ipv6: no enum sk_rst_reason") ||
		!strings.Contains(b.String(), "PASS: every detection") {
		t.Errorf("n/a only: OK=%v\n%s", r.OK(), b.String())
	}

	r.Kernel = &Kernel{BTF: true, Missing: []string{"sock_send_length", "sock_recv_length"}}
	r.failAll("the tracer did not load: kernel lacks tracepoint sock_send_length")
	b.Reset()
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if r.OK() {
		t.Error("OK after failAll")
	}
	for _, want := range []string{
		"DETECTION                            IPV4  IPV6\nunread_close                         FAIL  FAIL\n",
		"kernel: BTF; lacks tracepoints sock_send_length, sock_recv_length; no reset reasons (enum sk_rst_reason: 6.10+)\n",
		"reset reasons                        n/a   n/a\n",
		"FAIL every other detection: the tracer did not load: kernel lacks tracepoint sock_send_length\n",
		"FAIL: 10 of 11 checks do not work on this kernel\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

package selftest

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/internal/expect"
	"github.com/tcpclose-trace/tcpclose-trace/internal/scenario"
	"github.com/tcpclose-trace/tcpclose-trace/internal/selfreport"
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

// kernel61 is what the collector plans on Debian's 6.1 when the kernel
// refuses one trampoline.
var kernel61 = &Kernel{Release: "6.1.0-56-cloud-amd64",
	Hooks: []string{"tracepoint inet_sock_set_state", "function tcp_sendmsg", "function tcp_recvmsg",
		"tracepoint tcp_receive_reset", "tracepoint tcp_send_reset", "tracepoint tcp_destroy_sock",
		"function tcp_v6_send_reset"},
	Lost: []string{"kernel refused a trampoline on tcp_v4_send_reset (attach: no trampolines): IPv4 resets sent by TIME_WAIT sockets or for segments with no socket go unseen"},
}

func TestReportWrite(t *testing.T) {
	withNA := func() *Report {
		r := newReport([]string{"ipv4", "ipv6"})
		for _, f := range r.Families {
			r.Cells[RowReasons][f] = &Cell{Status: NotAvailable, Why: "no enum sk_rst_reason"}
		}
		return r
	}
	tests := []struct {
		name   string
		report func() *Report
		wantOK bool
		want   []string
	}{
		{name: "n/a only", report: withNA, wantOK: true, want: []string{
			"n/a reset reasons/ipv4, reset reasons/ipv6: no enum sk_rst_reason",
			"PASS: every detection",
		}},
		{name: "6.1, a trampoline refused, a row failed", report: func() *Report {
			r := withNA()
			r.Kernel = kernel61
			r.fail(expect.RowResetSent, "ipv4", "closed_port: no reset_sent event")
			return r
		}, want: []string{
			"kernel: tracepoints inet_sock_set_state, tcp_receive_reset, tcp_send_reset, tcp_destroy_sock; " +
				"fentry tcp_sendmsg, tcp_recvmsg, tcp_v6_send_reset; no reset reasons (enum sk_rst_reason: 6.10+)\n\n",
			"reset_sent (no socket)               FAIL  ok\n",
			"\nlost: kernel refused a trampoline on tcp_v4_send_reset (attach: no trampolines): IPv4 resets sent by TIME_WAIT sockets or for segments with no socket go unseen\n",
			"FAIL reset_sent (no socket)/ipv4: closed_port: no reset_sent event\n",
			"FAIL: 1 of 15 checks do not work on this kernel\n",
		}},
		{name: "kernel unsupported", report: func() *Report {
			r := withNA()
			r.Kernel = &Kernel{Release: "6.0.1", Problem: "kernel lacks tracepoint tcp_destroy_sock"}
			r.failAll("kernel lacks tracepoint tcp_destroy_sock")
			return r
		}, want: []string{
			"kernel: kernel lacks tracepoint tcp_destroy_sock\n",
			"DETECTION                            IPV4  IPV6\nunread_close                         FAIL  FAIL\n",
			"reset reasons                        n/a   n/a\n",
			"FAIL every other detection: kernel lacks tracepoint tcp_destroy_sock\n",
			"FAIL: 14 of 15 checks do not work on this kernel\n",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.report()
			var b strings.Builder
			if err := r.Write(&b); err != nil {
				t.Fatal(err)
			}
			if r.OK() != tt.wantOK {
				t.Errorf("OK() = %v, want %v", r.OK(), tt.wantOK)
			}
			for _, want := range tt.want {
				if !strings.Contains(b.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, b.String())
				}
			}
		})
	}
}

// TestDocument checks that the JSON document says what the table says: it
// decodes strictly and has the table's status in every cell.
func TestDocument(t *testing.T) {
	r := newReport([]string{"ipv4", "ipv6"})
	r.Kernel, r.Namespace = kernel61, "tct-0123abcd"
	r.Cells[RowReasons]["ipv4"] = &Cell{Status: NotAvailable, Why: "no enum sk_rst_reason"}
	r.Cells[RowReasons]["ipv6"] = &Cell{Status: NotAvailable, Why: "no enum sk_rst_reason"}
	r.fail(expect.RowResetSent, "ipv4", "closed_port: no reset_sent event")
	tests := []struct {
		name    string
		runErr  error
		wantErr string
	}{
		{name: "complete"},
		{name: "interrupted", runErr: errors.New("interrupted: context canceled"), wantErr: "interrupted: context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := r.Document(tt.runErr).Write(&b); err != nil {
				t.Fatal(err)
			}
			d, err := selfreport.Decode(&b)
			if err != nil {
				t.Fatalf("decode: %v\n%s", err, b.String())
			}
			if d.Kernel != kernel61.Release || !slices.Equal(d.Hooks, kernel61.Hooks) || !slices.Equal(d.Lost, kernel61.Lost) ||
				d.ResetReasons || d.Namespace != "tct-0123abcd" || d.Verdict != selfreport.Fail || d.Error != tt.wantErr {
				t.Errorf("document %+v", d)
			}
			if len(d.Rows) != len(Rows()) {
				t.Fatalf("%d rows, want %d", len(d.Rows), len(Rows()))
			}
			for i, row := range Rows() {
				if d.Rows[i].Detection != row {
					t.Errorf("row %d is %q, want %q", i, d.Rows[i].Detection, row)
				}
				for _, f := range r.Families {
					if got, want := d.Status(row, f), string(r.Cells[row][f].Status); got != want {
						t.Errorf("%s/%s: %q, want %q", row, f, got, want)
					}
				}
			}
			if c := d.Rows[slices.Index(Rows(), expect.RowResetSent)].Cells[0]; c.Why != "closed_port: no reset_sent event" {
				t.Errorf("reset_sent/ipv4 why %q", c.Why)
			}
		})
	}
}

package output

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

func TestStormNotices(t *testing.T) {
	reasons := collector.NewReasons(map[uint16]string{1: "NO_SOCKET", 2: "TCP\x1b[2J"})
	src := func(k collector.Kind, reason, addr string, port uint16, n uint64) collector.StormSource {
		return collector.StormSource{Kind: k, Reason: reason, RAddr: netip.MustParseAddr(addr), Port: port, Count: n}
	}
	tests := []struct {
		name    string
		set     func(c *collector.Counters)
		sources []collector.StormSource
		want    []string
	}{
		{"nothing suppressed", func(*collector.Counters) {}, nil, []string{}},
		{"resets by reason, largest first, top three sources of each",
			func(c *collector.Counters) {
				c.Suppressed[collector.KindResetSent] = 41230
				c.SuppressedReasons[1] = 41000
				c.SuppressedReasons[collector.ReasonUnknownSlot] = 230
				c.Suppressed[collector.KindResetReceived] = 5
			},
			[]collector.StormSource{
				src(collector.KindResetSent, "NO_SOCKET", "10.0.0.9", 1, 40000),
				src(collector.KindResetSent, "NO_SOCKET", "2001:db8::1", 22, 900),
				src(collector.KindResetSent, "NO_SOCKET", "10.0.0.8", 80, 50),
				src(collector.KindResetSent, "NO_SOCKET", "10.0.0.7", 80, 40),
				src(collector.KindResetSent, "unknown", "10.0.0.6", 443, 230),
			},
			[]string{
				"+41000 reset_sent NO_SOCKET suppressed in the last 1.1s (over the budget); top: 10.0.0.9 -> :1 40000, 2001:db8::1 -> :22 900, 10.0.0.8 -> :80 50",
				"+230 reset_sent unknown suppressed in the last 1.1s (over the budget); top: 10.0.0.6 -> :443 230",
				"+5 reset_received suppressed in the last 1.1s (over the budget)",
			}},
		{"a reason name from the kernel is escaped",
			func(c *collector.Counters) {
				c.Suppressed[collector.KindResetSent] = 3
				c.SuppressedReasons[2] = 3
			}, nil,
			[]string{`+3 reset_sent "TCP\x1b[2J" suppressed in the last 1.1s (over the budget)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector.Counters
			tt.set(&c)
			got := StormNotices(&c, tt.sources, reasons, 1100*time.Millisecond)
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("StormNotices:\n got  %q\n want %q", got, tt.want)
			}
		})
	}
}

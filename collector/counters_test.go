package collector

import "testing"

func TestCountersSub(t *testing.T) {
	var before, after Counters
	before.Kinds[KindDataAfterClose] = 2
	after.Kinds[KindDataAfterClose] = 7
	after.Kinds[KindAbortClose] = 1
	before.ResetReasons[3], after.ResetReasons[3] = 1, 4
	before.UnreadHist[5], after.UnreadHist[5] = 2, 3
	after.UnreadBytes, after.UnsentBytes, after.RefusedBytes, after.RingLost = 10, 20, 30, 40
	before.TimeWaitRefusals, after.TimeWaitRefusals = 1, 3

	d := after.Sub(&before)
	checks := []struct {
		what      string
		got, want uint64
	}{
		{"data_after_close", d.Kind(KindDataAfterClose), 5},
		{"abort_close", d.Kind(KindAbortClose), 1},
		{"reason 3", d.ResetReasons[3], 3},
		{"hist 5", d.UnreadHist[5], 1},
		{"bytes", d.UnreadBytes + d.UnsentBytes + d.RefusedBytes, 60},
		{"ring lost", d.RingLost, 40},
		{"time_wait refusals", d.TimeWaitRefusals, 2},
		{"aborts on data: abort_close + full-socket data_after_close", d.AbortsOnData(), 1 + 5 - 2},
		{"after unchanged", after.Kind(KindDataAfterClose), 7},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.what, c.got, c.want)
		}
	}
}

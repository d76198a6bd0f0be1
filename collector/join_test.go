package collector

import (
	"net/netip"
	"testing"
	"time"
)

// TestJoinStory: an undrained close, then the data after it on the
// same socket (from its TIME_WAIT successor, with no owner of its own): the
// data_after_close gets the close's owner and time, and tells the close.
func TestJoinStory(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 5)
	la, ra := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	pod := &PodInfo{Namespace: "ns", Name: "p"}
	closeEv := Event{Time: t0, Kind: KindUndrainedClose, PID: 10, TID: 11, Comm: "srv", CgroupID: 5, Netns: 7,
		LAddr: la, LPort: 80, RAddr: ra, RPort: 5555, Cookie: 99, State: 1, ShutWR: true, OwnerKnown: true}
	dac := Event{Time: t0.Add(12 * time.Millisecond), Kind: KindDataAfterClose, Netns: 7, LAddr: la, LPort: 80,
		RAddr: ra, RPort: 5555, Cookie: 99, State: 6, TimeWait: true, RefusedBytes: 100, Reason: "TCP_TIMEWAIT_SOCKET"}
	tests := []struct {
		name      string
		events    []Event
		wantStory bool
	}{
		{"joined", []Event{closeEv, dac}, true},
		{"no close seen", []Event{dac}, false},
		{"other socket", []Event{func() Event { e := closeEv; e.Cookie = 98; return e }(), dac}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(16, time.Minute)
			evs := append([]Event(nil), tt.events...)
			for i := range evs {
				tr.join(&evs[i])
			}
			got := &evs[len(evs)-1]
			var story Event
			if ok := got.UndrainedClose(&story); ok != tt.wantStory {
				t.Fatalf("UndrainedClose = %v, want %v", ok, tt.wantStory)
			}
			if !tt.wantStory {
				if got.OwnerKnown || got.SinceClose != 0 {
					t.Errorf("unjoined event got owner %v, since %v", got.OwnerKnown, got.SinceClose)
				}
				return
			}
			if !got.OwnerKnown || got.PID != 10 || got.Comm != "srv" || got.SinceClose != 12*time.Millisecond {
				t.Errorf("data_after_close = %+v, want the close's owner and 12ms since", got)
			}
			want := closeEv
			if !story.Time.Equal(want.Time) {
				t.Errorf("story time %v, want %v", story.Time, want.Time)
			}
			story.Time = want.Time
			if story != want {
				t.Errorf("story close = %+v\nwant %+v", story, want)
			}
			if tr.count != 0 {
				t.Errorf("tracker holds %d after the story ended", tr.count)
			}
			// The pod is the data_after_close's when the owner is the same.
			got.Pod = pod
			if got.UndrainedClose(&story); story.Pod != pod {
				t.Errorf("story pod %v, want %v", story.Pod, pod)
			}
		})
	}
}

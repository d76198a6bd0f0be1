package output

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
)

func TestParseKinds(t *testing.T) {
	tests := []struct {
		in      string
		want    string // the selection's String, when valid
		wantErr string
	}{
		{in: "unread_close", want: "unread_close"},
		{in: "undrained_close,unread_close", want: "unread_close,undrained_close"},
		{in: " data_after_close , reset_sent ", want: "data_after_close,reset_sent"},
		{in: "graceful_close,graceful_close", want: "graceful_close"},
		{in: "unread_close,undrained_close,data_after_close,abort_close,reset_received,reset_sent,graceful_close",
			want: "unread_close,undrained_close,data_after_close,abort_close,reset_received,reset_sent,graceful_close"},
		{in: "unread", wantErr: `unknown event kind "unread"`},
		{in: "UNREAD_CLOSE", wantErr: `unknown event kind "UNREAD_CLOSE"`},
		{in: "none", wantErr: `unknown event kind "none"`},
		{in: "", wantErr: "empty event kind"},
		{in: "unread_close,", wantErr: "empty event kind"},
		{in: "unread_close,,reset_sent", wantErr: "empty event kind"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseKinds(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKinds(%q) = %v, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), "kinds: unread_close,undrained_close,") || strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q: want one line naming the valid kinds", err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("ParseKinds(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			if again, err := ParseKinds(got.String()); err != nil || again != got {
				t.Errorf("ParseKinds(String()) = %v, %v", again, err)
			}
		})
	}
}

func TestSelections(t *testing.T) {
	k := collector.Kinds()
	tests := []struct {
		name    string
		sel     Selection
		want    []collector.Kind
		stories bool
	}{
		{"default", DefaultSelection(), []collector.Kind{collector.KindUnreadClose, collector.KindDataAfterClose,
			collector.KindAbortClose, collector.KindResetReceived, collector.KindResetSent}, true},
		{"all", AllKinds(), k, false},
		{"without data after close", SelectKinds(collector.KindUnreadClose), []collector.Kind{collector.KindUnreadClose}, false},
		{"undrained too", SelectKinds(collector.KindDataAfterClose, collector.KindUndrainedClose),
			[]collector.Kind{collector.KindUndrainedClose, collector.KindDataAfterClose}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.Kinds(); !slices.Equal(got, tt.want) {
				t.Errorf("Kinds() = %v, want %v", got, tt.want)
			}
			if got := tt.sel.Stories(); got != tt.stories {
				t.Errorf("Stories() = %v, want %v", got, tt.stories)
			}
		})
	}
}

// recorder is a Sink that keeps what it is given.
type recorder struct{ got []collector.Event }

func (r *recorder) Write(ev *collector.Event) error { r.got = append(r.got, *ev); return nil }
func (r *recorder) Flush() error                    { return nil }

// story returns an undrained close of socket cookie at t and the
// data_after_close that follows it 12 ms later, joined as the collector
// joins them.
func story(cookie uint64, t time.Time) (collector.Event, collector.Event) {
	cl := unreadEvent()
	cl.Kind, cl.UnreadBytes, cl.Cookie, cl.Time = collector.KindUndrainedClose, 0, cookie, t
	dac := cl
	dac.Kind, dac.Time, dac.State, dac.RefusedBytes, dac.Reason, dac.SinceClose =
		collector.KindDataAfterClose, t.Add(12*time.Millisecond), 5, 100, "TCP_ABORT_ON_DATA", 12*time.Millisecond
	dac.SetUndrainedClose(&cl)
	return cl, dac
}

func TestSelected(t *testing.T) {
	cl, dac := story(7, at)
	lone, _ := story(8, at) // an undrained close that no data follows
	// A data_after_close whose close was not seen (before the start, or evicted).
	unjoined := collector.Event{Time: at, Kind: collector.KindDataAfterClose, Cookie: 9, RefusedBytes: 5}
	unread, graceful := unreadEvent(), unreadEvent()
	graceful.Kind, graceful.UnreadBytes = collector.KindGracefulClose, 0
	in := []collector.Event{unread, cl, lone, graceful, dac, unjoined}
	tests := []struct {
		name       string
		sel        Selection
		want       []collector.Kind // written, in order
		wantHidden uint64
	}{
		{"default: the story, not the lone close", DefaultSelection(), []collector.Kind{collector.KindUnreadClose,
			collector.KindUndrainedClose, collector.KindDataAfterClose, collector.KindDataAfterClose}, 2},
		{"all: each when it happens", AllKinds(), []collector.Kind{collector.KindUnreadClose, collector.KindUndrainedClose,
			collector.KindUndrainedClose, collector.KindGracefulClose, collector.KindDataAfterClose, collector.KindDataAfterClose}, 0},
		{"undrained only", SelectKinds(collector.KindUndrainedClose), []collector.Kind{collector.KindUndrainedClose,
			collector.KindUndrainedClose}, 4},
		{"unread only", SelectKinds(collector.KindUnreadClose), []collector.Kind{collector.KindUnreadClose}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			s := NewSelected(&r, tt.sel)
			for i := range in {
				if err := s.Write(&in[i]); err != nil {
					t.Fatal(err)
				}
			}
			var kinds []collector.Kind
			for _, ev := range r.got {
				kinds = append(kinds, ev.Kind)
			}
			if !slices.Equal(kinds, tt.want) {
				t.Errorf("wrote %v, want %v", kinds, tt.want)
			}
			if s.Hidden() != tt.wantHidden {
				t.Errorf("Hidden() = %d, want %d", s.Hidden(), tt.wantHidden)
			}
		})
	}
	// The story's close is the close as it happened.
	var r recorder
	s := NewSelected(&r, DefaultSelection())
	_ = s.Write(&cl)
	_ = s.Write(&dac)
	if len(r.got) != 2 {
		t.Fatalf("wrote %d events, want 2", len(r.got))
	}
	got := r.got[0]
	if !got.Time.Equal(cl.Time) {
		t.Errorf("story close time %v, want %v", got.Time, cl.Time)
	}
	got.Time = cl.Time
	if got != cl {
		t.Errorf("story close %+v\nwant %+v", got, cl)
	}
}

// TestStoryTable: in the table, the story is the close's line, then the
// data's, each with its hint once.
func TestStoryTable(t *testing.T) {
	var buf bytes.Buffer
	tab := NewTable(&buf)
	tab.location = time.UTC
	s := NewSelected(tab, DefaultSelection())
	cl, dac := story(7, at)
	for _, ev := range []*collector.Event{&cl, &dac} {
		if err := s.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want header, close, hint, data, hint:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"undrained_close  state=ESTABLISHED", "hint(undrained_close)",
		"data_after_close refused=100 after_close=12ms state=FIN_WAIT2", "hint(data_after_close)"} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("line %d = %q, want %q in it", i+1, lines[i+1], want)
		}
	}
	if !strings.HasPrefix(lines[1], "10:30:00.123    4242 server") || !strings.HasPrefix(lines[3], "10:30:00.135    4242 server") {
		t.Errorf("story lines:\n%s\n%s", lines[1], lines[3])
	}
}

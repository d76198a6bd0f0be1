package collector

import (
	"errors"
	"slices"
	"testing"
)

// TestAttachFunction is the load-time policy of a function hook: its fentry
// program first; a kprobe on the same function only where the kernel refuses
// the trampoline (or a test forces it); lost only when both are refused. The
// tracepoint programs read the users a kprobe records only once a users
// kprobe is attached.
func TestAttachFunction(t *testing.T) {
	hooks := objectHooks(t, false)
	at := func(target string) hook {
		i := slices.IndexFunc(hooks, func(h hook) bool { return h.target == target })
		if i < 0 {
			t.Fatalf("no hook on %s", target)
		}
		return hooks[i]
	}
	refused := errors.New("attach: not supported")
	tests := []struct {
		name      string
		target    string
		force     bool
		refuse    map[string]bool // what the fake kernel refuses: "function", "kprobe"
		wantHooks []string
		wantTried []string
		wantLost  string
		wantUsers bool
	}{
		{name: "fentry works", target: "tcp_sendmsg",
			wantHooks: []string{"function tcp_sendmsg"}, wantTried: []string{"on_tcp_sendmsg"}},
		{name: "fentry refused: kprobe", target: "tcp_sendmsg", refuse: map[string]bool{"function": true},
			wantHooks: []string{"kprobe tcp_sendmsg"}, wantTried: []string{"on_tcp_sendmsg", "kp_tcp_sendmsg"}, wantUsers: true},
		{name: "fentry refused on a reset function: kprobe, no users", target: "tcp_v4_send_reset",
			refuse:    map[string]bool{"function": true},
			wantHooks: []string{"kprobe tcp_v4_send_reset"}, wantTried: []string{"on_v4_send_reset", "kp_v4_send_reset"}},
		{name: "both refused: lost", target: "tcp_recvmsg", refuse: map[string]bool{"function": true, "kprobe": true},
			wantTried: []string{"on_tcp_recvmsg", "kp_tcp_recvmsg"},
			wantLost:  "kernel refused a trampoline on tcp_recvmsg (attach: not supported) and a kprobe (attach: not supported): " + ownerOfAccepted},
		{name: "forced: kprobe, fentry not tried", target: "tcp_recvmsg", force: true,
			wantHooks: []string{"kprobe tcp_recvmsg"}, wantTried: []string{"kp_tcp_recvmsg"}, wantUsers: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Collector{opts: Options{ForceKprobes: tt.force}}
			var tried []string
			try := func(h hook) error {
				tried = append(tried, h.program)
				if tt.refuse[h.what] {
					return refused
				}
				c.hooks = append(c.hooks, h)
				return nil
			}
			c.attachFunction(at(tt.target), try)
			if got := c.Hooks(); !slices.Equal(got, tt.wantHooks) {
				t.Errorf("hooks %q, want %q", got, tt.wantHooks)
			}
			if !slices.Equal(tried, tt.wantTried) {
				t.Errorf("tried %q, want %q", tried, tt.wantTried)
			}
			var wantLost []string
			if tt.wantLost != "" {
				wantLost = []string{tt.wantLost}
			}
			if !slices.Equal(c.lost, wantLost) {
				t.Errorf("lost %q, want %q", c.lost, wantLost)
			}
			if c.usersProbed != tt.wantUsers {
				t.Errorf("users probed %v, want %v", c.usersProbed, tt.wantUsers)
			}
		})
	}
}

package output

import (
	"testing"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/symbolize"
)

func TestStackLine(t *testing.T) {
	goStack := []symbolize.Frame{
		{Func: "internal/runtime/syscall/linux.Syscall6", File: "asm_linux_amd64.s", Line: 36},
		{Func: "syscall.Syscall", File: "syscall_linux.go", Line: 87},
		{Func: "golang.org/x/sys/unix.Close", File: "zsyscall_linux.go", Line: 616},
		{Func: "internal/poll.(*FD).Close", File: "fd_unix.go", Line: 99},
		{Func: "net.(*conn).Close", File: "net.go", Line: 207},
		{Func: "main.closeWithoutDraining", File: "/src/server.go", Line: 88},
		{Func: "main.handle", File: "/src/server.go", Line: 40},
		{Func: "net/http.HandlerFunc.ServeHTTP", File: "server.go", Line: 2294},
		{Func: "main.main", File: "/src/main.go", Line: 9},
	}
	cStack := []symbolize.Frame{
		{Func: "__close", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6", Offset: 1018352},
		{Module: "/srv/app", Offset: 0x11dd, BuildID: "ab"},
		{Func: "main", Module: "/srv/app", Offset: 0x1373},
	}
	tests := []struct {
		name string
		st   *collector.Stack
		n    int
		want string
	}{
		{"none", nil, 3, ""},
		{"go: from the program's own code", &collector.Stack{Frames: goStack}, 3,
			"main.closeWithoutDraining (server.go:88) < main.handle (server.go:40) < net/http.HandlerFunc.ServeHTTP (server.go:2294) < ..."},
		{"c: libc skipped, unnamed frames as module+offset", &collector.Stack{Frames: cStack}, 3,
			"app+0x11dd < main (app+0x1373)"},
		{"only plumbing: all of it", &collector.Stack{Frames: goStack[:2]}, 1,
			"internal/runtime/syscall/linux.Syscall6 (asm_linux_amd64.s:36) < ..."},
		{"hostile names are escaped", &collector.Stack{Frames: []symbolize.Frame{{Func: "x\x1b[2Jy", Module: "/a"}}}, 3,
			`"x\x1b[2Jy (a+0x0)"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := StackLine(tt.st, tt.n); got != tt.want {
				t.Errorf("StackLine = %q\n want %q", got, tt.want)
			}
		})
	}
}

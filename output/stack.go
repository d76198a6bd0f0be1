package output

import (
	"path/filepath"
	"strings"

	"github.com/tcpclose-trace/tcpclose-trace/collector"
	"github.com/tcpclose-trace/tcpclose-trace/symbolize"
)

// StackLine names the first n frames of a stack's call site (CallSite),
// innermost first, as
// "main.reject (server.go:88) < main.handle (server.go:40) < ..." with
// every name escaped by Printable; "" for no stack.
func StackLine(st *collector.Stack, n int) string { return stackLine(st, n, " < ") }

// stackLine is StackLine with the separator sep.
func stackLine(st *collector.Stack, n int, sep string) string {
	if st == nil {
		return ""
	}
	var b strings.Builder
	for i, f := range CallSite(st.Frames) {
		if i == n {
			b.WriteString(sep + "...")
			break
		}
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(Printable(f.String()))
	}
	return b.String()
}

// CallSite is frames from the first one in the program's own code: the
// leading frames of the language runtime and of the C library (the system
// call, Go's runtime, syscall, os and net packages) say how close() was
// made, not where. All of frames when none is the program's own.
func CallSite(frames []symbolize.Frame) []symbolize.Frame {
	for i := range frames {
		if !plumbing(&frames[i]) {
			return frames[i:]
		}
	}
	return frames
}

// goPlumbing are the Go packages between a program's call and the system call.
var goPlumbing = []string{"runtime.", "internal/", "syscall.", "golang.org/x/sys/", "os.", "net.", "crypto/tls."}

// cPlumbing are the C libraries between a program's call and the system call.
var cPlumbing = []string{"libc.so", "libc-", "libpthread", "ld-linux"}

func plumbing(f *symbolize.Frame) bool {
	for _, p := range goPlumbing {
		if strings.HasPrefix(f.Func, p) {
			return true
		}
	}
	base := filepath.Base(f.Module)
	for _, p := range cPlumbing {
		if f.Module != "" && strings.HasPrefix(base, p) {
			return true
		}
	}
	return false
}

// Package tcpclosetrace is the root of tcpclose-trace, an eBPF observer of TCP
// closes that lose data. The kernel programs live in bpf/, the loader and
// event pipeline in collector/, the command in cmd/tcpclose-trace.
//
// The BPF object and its Go bindings in bpf/ are generated and committed;
// `make generate` rebuilds them with the pinned clang.
package tcpclosetrace

//go:generate go run ./tools/bpfgen -dir bpf -- -go-package bpf -target bpfel -type event_kind -type event_flag -type reason_slot -type event -type counts Tcpclose bpf/tcpclose.c -- -O2 -g -Wall -Werror
//go:generate go run ./tools/bpfgen -dir bpf -- -go-package bpf -target bpfel -output-stem tcpclose_compat -type event_kind -type event_flag -type reason_slot -type event -type counts TcpcloseCompat bpf/tcpclose.c -- -O2 -g -Wall -Werror -DTCPCLOSE_COMPAT

// Package tcpclosetrace is the root of tcpclose-trace, an eBPF observer of TCP
// closes that lose data. The kernel programs live in bpf/, the loader and
// event pipeline in collector/, the command in cmd/tcpclose-trace.
//
// The BPF object and its Go bindings in bpf/ are generated and committed;
// `make generate` rebuilds them with the pinned clang. The C is the one
// definition of the kernel<->Go contract: -type generates the event kinds,
// flags and reason slots (enum event_kind, event_flag, reason_slot) and the
// record and counters (struct event, counts); struct config, the options,
// and the program, map and variable names come with every build. Both
// builds take the same -type flags, so that their bindings stay alike
// (bpf/contract.go).
package tcpclosetrace

//go:generate go run ./tools/bpfgen -dir bpf -- -go-package bpf -target bpfel -type event_kind -type event_flag -type reason_slot -type event -type counts Tcpclose bpf/tcpclose.c -- -O2 -g -Wall -Werror
//go:generate go run ./tools/bpfgen -dir bpf -- -go-package bpf -target bpfel -output-stem tcpclose_compat -type event_kind -type event_flag -type reason_slot -type event -type counts TcpcloseCompat bpf/tcpclose.c -- -O2 -g -Wall -Werror -DTCPCLOSE_COMPAT

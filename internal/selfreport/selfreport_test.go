package selfreport

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// valid is a complete report: one row failed on IPv6.
const valid = `{
  "kernel": "6.1.0-56-cloud-amd64",
  "hooks": ["tracepoint inet_sock_set_state", "function tcp_sendmsg"],
  "reset_reasons": false,
  "active_reset_reasons": false,
  "lost": [],
  "families": ["ipv4", "ipv6"],
  "rows": [
    {"detection": "unread_close", "cells": [{"family": "ipv4", "status": "ok"}, {"family": "ipv6", "status": "FAIL", "why": "no event"}]},
    {"detection": "reset reasons", "cells": [{"family": "ipv4", "status": "n/a", "why": "no enum"}, {"family": "ipv6", "status": "n/a", "why": "no enum"}]}
  ],
  "verdict": "fail"
}
`

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
	}{
		{name: "valid", doc: valid},
		{name: "unknown field", doc: strings.Replace(valid, `"lost"`, `"lots": [], "lost"`, 1), wantErr: `unknown field "lots"`},
		{name: "data after the object", doc: valid + "{}", wantErr: "data after the object"},
		{name: "two objects", doc: valid + valid, wantErr: "data after the object"},
		{name: "not JSON", doc: "PASS: every detection", wantErr: "decode selftest report"},
		{name: "empty", doc: "", wantErr: "EOF"},
		{name: "unknown status", doc: strings.Replace(valid, `"status": "ok"`, `"status": "pass"`, 1), wantErr: `unknown status "pass"`},
		{name: "verdict disagrees", doc: strings.Replace(valid, `"verdict": "fail"`, `"verdict": "pass"`, 1), wantErr: "verdict pass disagrees"},
		{name: "unknown verdict", doc: strings.Replace(valid, `"verdict": "fail"`, `"verdict": "FAIL"`, 1), wantErr: `unknown verdict "FAIL"`},
		{name: "a family missing", doc: strings.Replace(valid, `{"family": "ipv4", "status": "ok"}, `, "", 1), wantErr: "1 cells for 2 families"},
		{name: "families out of order", doc: strings.Replace(valid, `"families": ["ipv4", "ipv6"]`, `"families": ["ipv6", "ipv4"]`, 1), wantErr: `cell 0 is "ipv4", want "ipv6"`},
		{name: "no kernel", doc: strings.Replace(valid, `"6.1.0-56-cloud-amd64"`, `""`, 1), wantErr: "no kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Decode(strings.NewReader(tt.doc))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Status("unread_close", "ipv6") != Failed || r.Status("reset reasons", "ipv4") != NotAvailable || r.Status("nope", "ipv4") != "" {
					t.Errorf("statuses of %+v", r)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}

func TestWriteDecode(t *testing.T) {
	r, err := Decode(strings.NewReader(valid))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), `{"kernel":"6.1.0-56-cloud-amd64","hooks":["tracepoint inet_sock_set_state",`) ||
		strings.Count(b.String(), "\n") != 1 || !strings.HasSuffix(b.String(), "}\n") {
		t.Errorf("written:\n%s", b.String())
	}
	back, err := Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Errorf("round trip: %+v, want %+v", back, r)
	}
}

func TestCombined(t *testing.T) {
	cells := func(st ...string) Row {
		r := Row{Detection: "x"}
		for i, s := range st {
			r.Cells = append(r.Cells, Cell{Family: []string{"ipv4", "ipv6", "ipx"}[i], Status: s})
		}
		return r
	}
	tests := []struct {
		row  Row
		want string
	}{
		{cells(OK, OK), "ok"},
		{cells(Failed, Failed), "FAIL"},
		{cells(NotAvailable, NotAvailable), "n/a"},
		{cells(OK, Failed), "FAIL (ipv6)"},
		{cells(Failed, OK), "FAIL (ipv4)"},
		{cells(NotAvailable, OK), "n/a (ipv4)"},
		{cells(NotAvailable, Failed), "FAIL (ipv6), n/a (ipv4)"},
		{cells(Failed, OK, Failed), "FAIL (ipv4, ipx)"},
		{cells(OK), "ok"},
		{cells(), ""},
	}
	for _, tt := range tests {
		if got := tt.row.Combined(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.row.Cells, got, tt.want)
		}
	}
}

func TestHooks(t *testing.T) {
	k618 := []string{"tracepoint inet_sock_set_state", "tracepoint sock_send_length", "tracepoint sock_recv_length",
		"tracepoint tcp_receive_reset", "tracepoint tcp_send_reset", "tracepoint tcp_destroy_sock"}
	k61 := []string{"tracepoint inet_sock_set_state", "function tcp_sendmsg", "function tcp_recvmsg",
		"tracepoint tcp_receive_reset", "tracepoint tcp_send_reset", "tracepoint tcp_destroy_sock",
		"function tcp_v4_send_reset", "function tcp_v6_send_reset"}
	tests := []struct {
		hooks         []string
		summary, list string
	}{
		{k618, "6 tracepoints", "tracepoints inet_sock_set_state, sock_send_length, sock_recv_length, tcp_receive_reset, tcp_send_reset, tcp_destroy_sock"},
		{k61, "4 tracepoints + 4 fentry",
			"tracepoints inet_sock_set_state, tcp_receive_reset, tcp_send_reset, tcp_destroy_sock; fentry tcp_sendmsg, tcp_recvmsg, tcp_v4_send_reset, tcp_v6_send_reset"},
		// arm64 6.1: the kernel refuses trampolines, kprobes stand in.
		{[]string{"tracepoint inet_sock_set_state", "kprobe tcp_sendmsg", "kprobe tcp_recvmsg",
			"tracepoint tcp_receive_reset", "tracepoint tcp_send_reset", "tracepoint tcp_destroy_sock",
			"kprobe tcp_v4_send_reset", "kprobe tcp_v6_send_reset"}, "4 tracepoints + 4 kprobes",
			"tracepoints inet_sock_set_state, tcp_receive_reset, tcp_send_reset, tcp_destroy_sock; kprobes tcp_sendmsg, tcp_recvmsg, tcp_v4_send_reset, tcp_v6_send_reset"},
		{[]string{"tracepoint a", "kprobe b", "uprobe c"}, "1 tracepoint + 1 kprobe + 1 other", "tracepoints a; kprobes b; uprobe c"},
		{nil, "none", "no hooks"},
	}
	for _, tt := range tests {
		if got := HookSummary(tt.hooks); got != tt.summary {
			t.Errorf("HookSummary(%v) = %q, want %q", tt.hooks, got, tt.summary)
		}
		if got := HookList(tt.hooks); got != tt.list {
			t.Errorf("HookList(%v) = %q, want %q", tt.hooks, got, tt.list)
		}
	}
}

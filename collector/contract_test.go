package collector

import (
	"reflect"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tcpclose-trace/tcpclose-trace/bpf"
)

// TestContract proves that the Go side agrees with bpf/tcpclose.c, in both
// builds: the record, the counters, the options and the storm key have the
// layout their BTF gives (field by field: name, offset, size), the event
// kinds, flags and reason slots the values of the C enums, every kind a
// name, and every program, map and variable the collector names exists.
func TestContract(t *testing.T) {
	kinds := map[string]uint64{}
	for k := KindNone; k < numKinds; k++ {
		kinds["KIND_"+strings.ToUpper(k.String())] = uint64(k)
		if k.String() == "" || strings.HasPrefix(k.String(), "kind(") {
			t.Errorf("kind %d has no name", k)
		}
	}
	kinds["NR_KINDS"] = uint64(numKinds)
	// The flags are used as generated: the test proves the generated file
	// is the objects' (make generate was run).
	flags := map[string]uint64{}
	for name, f := range map[string]bpf.TcpcloseEventFlag{
		"EVF_OWNER": bpf.TcpcloseEventFlagEVF_OWNER, "EVF_PEER_FIN": bpf.TcpcloseEventFlagEVF_PEER_FIN,
		"EVF_SHUT_WR": bpf.TcpcloseEventFlagEVF_SHUT_WR, "EVF_REASON": bpf.TcpcloseEventFlagEVF_REASON,
		"EVF_TIME_WAIT": bpf.TcpcloseEventFlagEVF_TIME_WAIT, "EVF_NO_SOCKET": bpf.TcpcloseEventFlagEVF_NO_SOCKET,
		"EVF_PROVISIONAL": bpf.TcpcloseEventFlagEVF_PROVISIONAL, "EVF_LOCAL_ABORT": bpf.TcpcloseEventFlagEVF_LOCAL_ABORT,
		"EVF_LISTENER": bpf.TcpcloseEventFlagEVF_LISTENER, "EVF_NO_STORAGE": bpf.TcpcloseEventFlagEVF_NO_STORAGE,
		"EVF_NO_STACK": bpf.TcpcloseEventFlagEVF_NO_STACK,
	} {
		flags[name] = uint64(f)
	}
	reasons := map[string]uint64{"REASON_UNKNOWN": uint64(ReasonUnknownSlot), "NR_REASONS": uint64(NumReasonSlots)}

	for _, compat := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "compat"}[compat], func(t *testing.T) {
			spec, err := loadSpec(compat)
			if err != nil {
				t.Fatal(err)
			}
			checkLayout(t, spec.Types, "event", reflect.TypeFor[RawEvent]())
			checkLayout(t, spec.Types, "counts", reflect.TypeFor[bpf.TcpcloseCounts]())
			checkLayout(t, spec.Types, "config", reflect.TypeFor[bpf.TcpcloseConfig]())
			checkLayout(t, spec.Types, "storm_key", reflect.TypeFor[bpf.TcpcloseStormKey]())
			checkEnum(t, spec.Types, "event_kind", kinds)
			checkEnum(t, spec.Types, "event_flag", flags)
			checkEnum(t, spec.Types, "reason_slot", reasons)

			for _, name := range []string{bpf.TcpcloseMapEvents, bpf.TcpcloseMapCounters, bpf.TcpcloseMapStacks, bpf.TcpcloseMapStorm} {
				if spec.Maps[name] == nil {
					t.Errorf("no map %s", name)
				}
			}
			if spec.Variables[bpf.TcpcloseVarCfg] == nil {
				t.Errorf("no variable %s", bpf.TcpcloseVarCfg)
			}
			if spec.Programs[ownersProgram] == nil {
				t.Errorf("no program %s", ownersProgram)
			}
			if _, err := hooksOf(spec); err != nil {
				t.Error(err)
			}
			if err := setVariables(spec, &Options{PID: 7, Comm: "curl", RingBytes: 1 << 16}); err != nil {
				t.Fatal(err)
			}
			var cfg bpf.TcpcloseConfig
			if err := spec.Variables[bpf.TcpcloseVarCfg].Get(&cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.FilterPid != 7 || cfg.FilterCommLen != 4 || cfg.FilterComm[3] != 'l' || cfg.WakeupBytes != 1<<14 {
				t.Errorf("options as set: %+v", cfg)
			}
		})
	}
}

// checkLayout compares a C struct's BTF with its Go type: the same size,
// and the same members (blank padding aside) at the same offsets and sizes.
func checkLayout(t *testing.T, types *btf.Spec, name string, goType reflect.Type) {
	t.Helper()
	var s *btf.Struct
	if err := types.TypeByName(name, &s); err != nil {
		t.Errorf("struct %s: %v", name, err)
		return
	}
	if s.Size != uint32(goType.Size()) {
		t.Errorf("struct %s: %d bytes in C, %d in Go (%s)", name, s.Size, goType.Size(), goType)
	}
	var fields []reflect.StructField
	for i := range goType.NumField() {
		if f := goType.Field(i); f.Name != "_" {
			fields = append(fields, f)
		}
	}
	if len(fields) != len(s.Members) {
		t.Errorf("struct %s: %d members in C, %d fields in Go", name, len(s.Members), len(fields))
		return
	}
	for i, m := range s.Members {
		f := fields[i]
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Errorf("struct %s, %s: %v", name, m.Name, err)
			continue
		}
		if f.Name != goName(m.Name) || uint32(f.Offset) != m.Offset.Bytes() || uintptr(size) != f.Type.Size() {
			t.Errorf("struct %s: C %s at %d (%d bytes), Go %s at %d (%d bytes)",
				name, m.Name, m.Offset.Bytes(), size, f.Name, f.Offset, f.Type.Size())
		}
	}
}

// goName is bpf2go's Go name of a C member: filter_comm_len is FilterCommLen.
func goName(c string) string {
	parts := strings.Split(c, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// checkEnum compares a C enum's values with the Go constants, by name.
func checkEnum(t *testing.T, types *btf.Spec, name string, want map[string]uint64) {
	t.Helper()
	var e *btf.Enum
	if err := types.TypeByName(name, &e); err != nil {
		t.Errorf("enum %s: %v", name, err)
		return
	}
	if len(e.Values) != len(want) {
		t.Errorf("enum %s: %d values in C, %d in Go", name, len(e.Values), len(want))
	}
	for _, v := range e.Values {
		if w, ok := want[v.Name]; !ok || w != v.Value {
			t.Errorf("enum %s: %s is %d in C, %d in Go (known %v)", name, v.Name, v.Value, w, ok)
		}
	}
}

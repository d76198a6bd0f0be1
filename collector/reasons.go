package collector

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Reasons maps the running kernel's enum sk_rst_reason values to names.
type Reasons struct {
	names map[uint16]string
}

// ErrNoResetReasons means the kernel predates enum sk_rst_reason (before 6.10).
var ErrNoResetReasons = errors.New("kernel has no enum sk_rst_reason")

// LoadReasons reads enum sk_rst_reason from a kernel BTF spec.
func LoadReasons(spec *btf.Spec) (*Reasons, error) {
	var enum *btf.Enum
	if err := spec.TypeByName("sk_rst_reason", &enum); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return &Reasons{}, ErrNoResetReasons
		}
		return nil, fmt.Errorf("look up enum sk_rst_reason: %w", err)
	}
	r := &Reasons{names: make(map[uint16]string, len(enum.Values))}
	for _, v := range enum.Values {
		name := strings.TrimPrefix(v.Name, "SK_RST_REASON_")
		if name == "MAX" {
			continue
		}
		r.names[uint16(v.Value)] = name
	}
	return r, nil
}

// NewReasons builds a table from explicit names, for tests.
func NewReasons(names map[uint16]string) *Reasons { return &Reasons{names: names} }

// Name returns the reason's name, or its number when the kernel has no name for it.
func (r *Reasons) Name(v uint16) string {
	if r != nil {
		if n, ok := r.names[v]; ok {
			return n
		}
	}
	return strconv.Itoa(int(v))
}

// Values returns every reason value the kernel names, in ascending order.
func (r *Reasons) Values() []uint16 {
	if r == nil {
		return nil
	}
	vs := make([]uint16, 0, len(r.names))
	for v := range r.names {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// Value returns the number of a named reason.
func (r *Reasons) Value(name string) (uint16, bool) {
	if r == nil {
		return 0, false
	}
	for v, n := range r.names {
		if n == name {
			return v, true
		}
	}
	return 0, false
}

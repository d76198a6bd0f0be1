package kubetest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kinds are the only kinds the manifests may hold, by apiVersion and kind,
// with the typed object each decodes into.
var kinds = map[string]func() any{
	"v1/Namespace":                            func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"apps/v1/DaemonSet":                       func() any { return &appsv1.DaemonSet{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return &monitoringv1.PodMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &monitoringv1.PrometheusRule{} },
}

// object is one decoded document.
type object struct {
	kind string // apiVersion/kind, a key of kinds
	meta metav1.ObjectMeta
	typ  any            // the typed object (a pointer)
	raw  map[string]any // the document as generic JSON
}

// objects are the documents of one rendering.
type objects []object

// ofKind returns the objects of a kind, e.g. "apps/v1/DaemonSet".
func (os objects) ofKind(kind string) []object {
	var out []object
	for _, o := range os {
		if o.kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of a kind, failing the test unless there is
// exactly one.
func one[T any](t *testing.T, os objects, kind string) *T {
	t.Helper()
	got := os.ofKind(kind)
	if len(got) != 1 {
		t.Fatalf("want exactly one %s, got %d", kind, len(got))
	}
	return got[0].typ.(*T)
}

// decodeAll splits a multi-document YAML stream and decodes every document
// strictly into the API type its apiVersion and kind name: duplicate keys,
// unknown fields, values of the wrong type and unknown kinds are errors.
// Empty documents (only comments) are skipped.
func decodeAll(src []byte) (objects, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(src)))
	var out objects
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		js, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "" {
			continue
		}
		o, err := decodeOne(js)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		out = append(out, o)
	}
	return out, nil
}

func decodeOne(js []byte) (object, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return object{}, err
	}
	kind := tm.APIVersion + "/" + tm.Kind
	newObj, ok := kinds[kind]
	if !ok {
		return object{}, fmt.Errorf("unexpected kind %q", kind)
	}
	typ := newObj()
	if err := unmarshalStrict(js, typ); err != nil {
		return object{}, fmt.Errorf("%s: %w", kind, err)
	}
	var raw map[string]any
	if err := json.Unmarshal(js, &raw); err != nil {
		return object{}, err
	}
	var meta struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(js, &meta); err != nil {
		return object{}, err
	}
	return object{kind: kind, meta: meta.Metadata, typ: typ, raw: raw}, nil
}

// unmarshalStrict decodes JSON as the API server does in strict field
// validation: field names match case-sensitively, and unknown or duplicate
// fields are errors.
func unmarshalStrict(js []byte, v any) error {
	strict, err := sjson.UnmarshalStrict(js, v, sjson.DisallowDuplicateFields, sjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

func TestDecodeAllIsStrict(t *testing.T) {
	const ds = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: x\n"
	tests := []struct {
		name, src, wantErr string
	}{
		{"unknown field", ds + "spec:\n  template:\n    spec:\n      hostNetwrok: true\n", "unknown field"},
		{"field in the wrong case", ds + "spec:\n  Selector: {}\n", "unknown field"},
		{"duplicate key", ds + "spec: {}\nspec: {}\n", "already set"},
		{"wrong type", ds + "spec:\n  minReadySeconds: soon\n", "cannot unmarshal"},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n", "unexpected kind"},
		{"unknown version", "apiVersion: apps/v1beta1\nkind: DaemonSet\n", "unexpected kind"},
		{"unknown field in a CR", "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nspec:\n  endpoints:\n    - prot: metrics\n", "unknown field"},
		{"valid, with an empty document", "# only a comment\n---\n" + ds, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := decodeAll([]byte(tt.src))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr == "" && len(objs) != 1:
				t.Fatalf("got %d objects, want 1", len(objs))
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

package kubetest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	kubeReadme = "../kubernetes/README.md"
	valuesFile = chartDir + "/values.yaml"
)

// valueKeys returns the dotted paths of values.yaml's leaves: scalars,
// lists and empty maps (a non-empty map is walked into).
func valueKeys(prefix string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return []string{prefix}
	}
	var out []string
	for k, x := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		out = append(out, valueKeys(p, x)...)
	}
	return out
}

// tableKey matches a row of the README's values table and captures its
// first cell.
var tableKey = regexp.MustCompile("(?m)^\\| (`[a-zA-Z.]+`(?:, `[a-zA-Z.]+`)*) \\|")

// TestReadmeDocumentsEveryValue: every value of the chart is in the
// README's table (itself or a parent key), and the table names no value
// the chart does not have.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	src, err := os.ReadFile(valuesFile)
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(src, &values); err != nil {
		t.Fatal(err)
	}
	leaves := valueKeys("", values)
	readme, err := os.ReadFile(kubeReadme)
	if err != nil {
		t.Fatal(err)
	}
	// The table is in the Helm section.
	_, section, ok := strings.Cut(string(readme), "\n## Install with Helm\n")
	if !ok {
		t.Fatalf("%s: no section \"Install with Helm\"", kubeReadme)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var documented []string
	for _, m := range tableKey.FindAllStringSubmatch(section, -1) {
		for _, k := range strings.Split(m[1], ", ") {
			documented = append(documented, strings.Trim(k, "`"))
		}
	}
	if len(documented) < 20 {
		t.Fatalf("%s: found only %d documented values: %v", kubeReadme, len(documented), documented)
	}
	covered := func(leaf string) bool {
		return slices.ContainsFunc(documented, func(d string) bool { return leaf == d || strings.HasPrefix(leaf, d+".") })
	}
	for _, leaf := range leaves {
		if !covered(leaf) {
			t.Errorf("value %s is not in %s's values table", leaf, kubeReadme)
		}
	}
	for _, d := range documented {
		if !slices.ContainsFunc(leaves, func(l string) bool { return l == d || strings.HasPrefix(l, d+".") }) {
			t.Errorf("%s documents %s, which values.yaml does not have", kubeReadme, d)
		}
	}
}

// TestReadmeOverlayBuilds builds the overlay the README shows, with its
// paths pointed at this checkout.
func TestReadmeOverlayBuilds(t *testing.T) {
	readme, err := os.ReadFile(kubeReadme)
	if err != nil {
		t.Fatal(err)
	}
	const marker = "# my-overlay/kustomization.yaml\n"
	_, example, ok := strings.Cut(string(readme), marker)
	if !ok {
		t.Fatalf("%s: no example starting %q", kubeReadme, marker)
	}
	example, _, _ = strings.Cut(example, "```")
	dir := overlay(t) // for its directory and the relative path to the base
	base, err := filepath.Rel(dir, mustAbs(t, kustomizeDir))
	if err != nil {
		t.Fatal(err)
	}
	example = strings.ReplaceAll(example, "../deploy/kubernetes", base)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := kustomizeBuild(dir)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(src)
	if err != nil {
		t.Fatal(err)
	}
	w := with(kustomizeBase, func(w *want) {
		w.image = "<your-registry>/tcpclose-trace:0.1.0"
		w.hostPaths = paths(btf, cgroup, crio)
	})
	checkObjects(t, objs, w)
	for _, o := range objs {
		if o.meta.Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("%s %s: the overlay's label is missing", o.kind, o.meta.Name)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

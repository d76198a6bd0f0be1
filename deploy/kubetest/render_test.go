package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Paths of the files under test, from this directory.
const (
	kustomizeDir = "../kubernetes"
	chartDir     = "../helm/tcpclose-trace"
	rulesFile    = "../prometheus/tcpclose-trace.rules.yml"
	chartRules   = chartDir + "/files/tcpclose-trace.rules.yml"
)

// kustomizeBuild builds a kustomization directory as `kubectl kustomize`
// does, in process and offline.
func kustomizeBuild(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return m.AsYaml()
}

// overlay writes a kustomization that uses deploy/kubernetes with the
// given components, as a user's overlay would, and returns its directory.
func overlay(t *testing.T, components ...string) string {
	t.Helper()
	base, err := filepath.Abs(kustomizeDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// kustomize takes relative paths only.
	rel, err := filepath.Rel(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n", rel)
	for _, c := range components {
		fmt.Fprintf(&b, "  - %s\n", filepath.Join(rel, "components", c))
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// release is how the tests install the chart.
var release = chartutil.ReleaseOptions{Name: "tcpclose-trace", Namespace: "monitoring", Revision: 1, IsInstall: true}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// helmTemplate renders the chart as `helm template` does, with values (YAML)
// over the defaults, checked against values.schema.json, and in strict mode
// (a template reading a missing value fails). It returns the manifests in
// template order and the rendered NOTES.txt.
func helmTemplate(ch *chart.Chart, values string) (manifests []byte, notes string, err error) {
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		return nil, "", fmt.Errorf("read values: %w", err)
	}
	top, err := chartutil.ToRenderValues(ch, vals, release, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, "", fmt.Errorf("values: %w", err)
	}
	out, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return nil, "", fmt.Errorf("render: %w", err)
	}
	names := make([]string, 0, len(out))
	for name := range out {
		names = append(names, name)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, "/NOTES.txt"):
			notes = out[name]
		case strings.HasSuffix(name, ".yaml"):
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", name, out[name])
		case strings.HasSuffix(name, ".tpl"):
			if strings.TrimSpace(out[name]) != "" {
				return nil, "", fmt.Errorf("%s renders output", name)
			}
		default:
			return nil, "", fmt.Errorf("unexpected template %s", name)
		}
	}
	return []byte(b.String()), notes, nil
}

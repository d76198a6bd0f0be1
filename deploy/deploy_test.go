package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/tcpclose-trace/tcpclose-trace/exporter"
	"github.com/tcpclose-trace/tcpclose-trace/internal/testsupport/testenv"
)

// exportedMetrics are the tcpclose_* metric names the daemon exports (a
// histogram by its base name), as the exporter describes them. The rules
// and the dashboard may use no other.
var exportedMetrics = describedNames(exporter.New("test"), exporter.NewByComm(1), exporter.NewByPod(1))

// describedNames returns the metric names the collectors describe.
func describedNames(cs ...prometheus.Collector) []string {
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 64)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				names = append(names, m[1])
			}
		}
	}
	return names
}

// wantAlerts are the alerts the rules must define, no more, no fewer.
var wantAlerts = []string{
	"TCPCloseUnreadDataDiscarded",
	"TCPCloseDataAfterClose",
	"TCPResetRateAboveBaseline",
	"TCPCloseTraceEventsLost",
	"TCPCloseTraceNotAttached",
}

const (
	rulesFile          = "prometheus/tcpclose-trace.rules.yml"
	rulesTestFile      = "prometheus/tcpclose-trace.rules_test.yml"
	prometheusRuleFile = "prometheus/prometheusrule.yaml"
	dashboardFile      = "grafana/tcpclose-trace.json"
)

// ruleFile is a Prometheus rules file, decoded strictly: an unknown field
// (a typo such as "anotations") is an error.
type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Record      string            `json:"record,omitempty"`
	Alert       string            `json:"alert,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// readYAML parses a YAML file of this directory.
func readYAML(t *testing.T, path string) any {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// decodeStrict converts a parsed YAML tree into out through JSON, refusing
// unknown fields.
func decodeStrict(t *testing.T, what string, v any, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	decodeStrict(t, rulesFile, readYAML(t, rulesFile), &rf)
	if len(rf.Groups) != 1 || rf.Groups[0].Name != "tcpclose-trace" {
		t.Fatalf("%s: want exactly one group, tcpclose-trace; got %d groups", rulesFile, len(rf.Groups))
	}
	return rf
}

func TestPromtool(t *testing.T) {
	tests := []struct {
		name string
		// args returns promtool's arguments, writing any file they need.
		args func(t *testing.T) []string
	}{
		{"check rules", func(*testing.T) []string {
			return []string{"check", "rules", rulesFile}
		}},
		{"test rules", func(*testing.T) []string {
			return []string{"test", "rules", rulesTestFile}
		}},
		{"check PrometheusRule spec", func(t *testing.T) []string {
			spec := lookup(t, readYAML(t, prometheusRuleFile), "spec")
			return []string{"check", "rules", writeJSON(t, "prometheusrule-spec.json", spec)}
		}},
		{"check dashboard queries", func(t *testing.T) []string {
			return []string{"check", "rules", writeJSON(t, "dashboard-queries.json", dashboardAsRules(t))}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := testenv.RequireTool(t, "promtool", "prometheus")
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, tt.args(t)...).CombinedOutput()
			if err != nil {
				t.Fatalf("promtool %s: %v\n%s", tt.name, err, out)
			}
		})
	}
}

// lookup returns the value of key in a parsed YAML mapping.
func lookup(t *testing.T, v any, key string) any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("want a mapping holding %q, got %T", key, v)
	}
	x, ok := m[key]
	if !ok {
		t.Fatalf("no %q in the mapping", key)
	}
	return x
}

// writeJSON writes v as JSON (which is YAML too) to a temporary file.
func writeJSON(t *testing.T, name string, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// dashboardAsRules turns every dashboard query into a recording rule, with
// Grafana's variables replaced by values, so promtool can check the PromQL.
func dashboardAsRules(t *testing.T) ruleFile {
	t.Helper()
	vars := strings.NewReplacer(`$__rate_interval`, "5m", `$__interval`, "1m", `$__range`, "1h", `$instance`, ".*")
	group := ruleGroup{Name: "dashboard"}
	for _, q := range dashboardQueries(t) {
		expr := vars.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Fatalf("%s: unknown variable in %q", q.where, q.expr)
		}
		group.Rules = append(group.Rules, rule{Record: fmt.Sprintf("dashboard_query_%d", len(group.Rules)+1), Expr: expr})
	}
	return ruleFile{Groups: []ruleGroup{group}}
}

func TestPrometheusRuleMatchesRulesFile(t *testing.T) {
	plain := readYAML(t, rulesFile)
	obj := readYAML(t, prometheusRuleFile)
	for _, c := range []struct {
		path []string
		want string
	}{
		{[]string{"apiVersion"}, "monitoring.coreos.com/v1"},
		{[]string{"kind"}, "PrometheusRule"},
		{[]string{"metadata", "name"}, "tcpclose-trace"},
		{[]string{"metadata", "labels", "app.kubernetes.io/name"}, "tcpclose-trace"},
	} {
		v := obj
		for _, k := range c.path {
			v = lookup(t, v, k)
		}
		if v != c.want {
			t.Errorf("%s: %s = %v, want %q", prometheusRuleFile, strings.Join(c.path, "."), v, c.want)
		}
	}
	spec := lookup(t, obj, "spec")
	if m := spec.(map[string]any); len(m) != 1 {
		t.Errorf("%s: spec should hold only groups, has %d keys", prometheusRuleFile, len(m))
	}
	got, want := lookup(t, spec, "groups"), lookup(t, plain, "groups")
	if d := firstDiff(got, want, "groups"); d != "" {
		t.Errorf("%s: spec.groups differs from %s's groups: %s", prometheusRuleFile, rulesFile, d)
	}
}

// firstDiff describes where two parsed YAML trees first differ, or returns
// "" when they are deeply equal.
func firstDiff(got, want any, path string) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: got %T, want a mapping", path, got)
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, gok := g[k]
			wv, wok := w[k]
			if gok != wok {
				return fmt.Sprintf("%s.%s: present %v, want present %v", path, k, gok, wok)
			}
			if d := firstDiff(gv, wv, path+"."+k); d != "" {
				return d
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok {
			return fmt.Sprintf("%s: got %T, want a sequence", path, got)
		}
		for i := range min(len(g), len(w)) {
			if d := firstDiff(g[i], w[i], fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		if len(g) != len(w) {
			return fmt.Sprintf("%s: %d items, want %d", path, len(g), len(w))
		}
		return ""
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Sprintf("%s: got %q, want %q", path, got, want)
	}
	return ""
}

// identRE matches PromQL identifiers: metric names, recording rule names
// (with colons), label names, functions and keywords alike.
var identRE = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)

// checkNames reports each tcpclose_ metric name in text that the daemon does
// not export, and each recording rule name (level:metric:operations) that is
// not in records. A histogram may be used by its _bucket, _sum and _count
// series.
func checkNames(text string, records map[string]bool) []string {
	var bad []string
	for _, id := range identRE.FindAllString(text, -1) {
		switch {
		case strings.Contains(id, ":"):
			if strings.Contains(id, "tcpclose") && !records[id] {
				bad = append(bad, id+" (no such recording rule)")
			}
		case strings.HasPrefix(id, "tcpclose_") && id != "tcpclose_":
			if !isExported(id) {
				bad = append(bad, id+" (not exported)")
			}
		}
	}
	return bad
}

func isExported(name string) bool {
	if slices.Contains(exportedMetrics, name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && slices.Contains(exportedMetrics, base) {
			return true
		}
	}
	return false
}

// metricNames returns the exported metrics text uses (histograms by base
// name).
func metricNames(text string) []string {
	var names []string
	for _, id := range identRE.FindAllString(text, -1) {
		for _, m := range exportedMetrics {
			if id == m || id == m+"_bucket" || id == m+"_sum" || id == m+"_count" {
				names = append(names, m)
			}
		}
	}
	return names
}

func TestRulesUseExportedMetrics(t *testing.T) {
	rf := loadRules(t)
	records := map[string]bool{}
	for _, r := range rf.Groups[0].Rules {
		if r.Record != "" {
			records[r.Record] = true
		}
	}
	for _, r := range rf.Groups[0].Rules {
		name := r.Alert + r.Record
		t.Run(name, func(t *testing.T) {
			if r.Expr == "" {
				t.Fatal("empty expr")
			}
			for _, bad := range checkNames(r.Expr, records) {
				t.Errorf("expr uses %s", bad)
			}
			// Annotations may name metrics too (and run queries).
			for k, v := range r.Annotations {
				for _, bad := range checkNames(v, records) {
					t.Errorf("annotation %s names %s", k, bad)
				}
			}
			if strings.Contains(r.Expr, "job=") || strings.Contains(r.Expr, "job!") {
				t.Errorf("expr selects on a job label: %s", r.Expr)
			}
		})
	}
}

func TestRulesAreComplete(t *testing.T) {
	rf := loadRules(t)
	recordRE := regexp.MustCompile(`^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$`)
	var alerts []string
	for _, r := range rf.Groups[0].Rules {
		if (r.Alert == "") == (r.Record == "") {
			t.Errorf("a rule must have exactly one of alert and record: %+v", r)
			continue
		}
		if r.Record != "" {
			if !recordRE.MatchString(r.Record) {
				t.Errorf("recording rule %s: want a level:metric:operations name", r.Record)
			}
			if len(r.Labels) > 0 || len(r.Annotations) > 0 || r.For != "" {
				t.Errorf("recording rule %s has alert fields", r.Record)
			}
			continue
		}
		alerts = append(alerts, r.Alert)
		t.Run(r.Alert, func(t *testing.T) {
			if s := r.Labels["severity"]; s != "warning" && s != "info" && s != "critical" {
				t.Errorf("severity = %q, want warning, info or critical", s)
			}
			if r.For == "" {
				t.Error("no for: (write for: 0m to fire at once)")
			}
			for _, k := range []string{"summary", "description", "runbook"} {
				if strings.TrimSpace(r.Annotations[k]) == "" {
					t.Errorf("annotation %s is missing or empty", k)
				}
			}
			if !strings.Contains(r.Annotations["summary"]+r.Annotations["description"], "$labels.instance") {
				t.Error("summary and description do not name the instance ($labels.instance)")
			}
			if !strings.Contains(r.Annotations["description"], "$value") {
				t.Error("description does not say how many ($value)")
			}
		})
	}
	got, want := slices.Sorted(slices.Values(alerts)), slices.Sorted(slices.Values(wantAlerts))
	if !slices.Equal(got, want) {
		t.Errorf("alerts = %v, want %v", got, want)
	}
}

// dashboard is the part of a Grafana dashboard the tests look at.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels      []panel `json:"panels"` // a collapsed row's panels
	Description string  `json:"description"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels returns the panels, rows' panels included, depth first.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

type dashboardQuery struct {
	where string // panel title and refId
	expr  string
}

func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	var qs []dashboardQuery
	for _, p := range allPanels(loadDashboard(t).Panels) {
		for _, tg := range p.Targets {
			qs = append(qs, dashboardQuery{fmt.Sprintf("panel %q query %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	if len(qs) == 0 {
		t.Fatalf("%s: no queries", dashboardFile)
	}
	return qs
}

// selectorRE matches a tcpclose_ metric name and its label matchers, if any.
var selectorRE = regexp.MustCompile(`tcpclose_[A-Za-z0-9_]*(\s*\{[^}]*\})?`)

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID != "tcpclose-trace" || d.Title != "tcpclose-trace" {
		t.Errorf("uid, title = %q, %q; want tcpclose-trace for both", d.UID, d.Title)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion = %d, want 39 or later", d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type + " " + string(v.Query)
		if v.Datasource != nil && v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s: datasource %q, want ${datasource}", v.Name, v.Datasource.UID)
		}
	}
	if got := vars["datasource"]; got != `datasource "prometheus"` {
		t.Errorf("variable datasource = %s, want a prometheus datasource variable", got)
	}
	if got := vars["instance"]; !strings.HasPrefix(got, "query ") || !strings.Contains(got, "label_values(tcpclose_programs_attached, instance)") {
		t.Errorf("variable instance = %s, want a query on label_values(tcpclose_programs_attached, instance)", got)
	}

	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel %q: duplicate id %d", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want uid ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		for _, tg := range p.Targets {
			where := fmt.Sprintf("panel %q query %s", p.Title, tg.RefID)
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s: datasource %+v, want uid ${datasource}", where, tg.Datasource)
			}
			for _, bad := range checkNames(tg.Expr, nil) {
				t.Errorf("%s uses %s", where, bad)
			}
			sels := selectorRE.FindAllStringSubmatch(tg.Expr, -1)
			if len(sels) == 0 {
				t.Errorf("%s: no tcpclose_ metric in %q", where, tg.Expr)
			}
			for _, sel := range sels {
				if !strings.Contains(sel[1], `instance=~"$instance"`) {
					t.Errorf("%s: %s is not filtered by instance=~\"$instance\"", where, sel[0])
				}
			}
			for _, m := range metricNames(tg.Expr) {
				used[m] = true
			}
		}
	}
	for _, m := range exportedMetrics {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

func TestExportedMetricsKnown(t *testing.T) {
	if len(exportedMetrics) != 17 || !slices.Contains(exportedMetrics, "tcpclose_closes_total") ||
		!slices.Contains(exportedMetrics, "tcpclose_anomalies_by_comm_total") || !slices.Contains(exportedMetrics, "tcpclose_anomalies_by_pod_total") {
		t.Fatalf("metric names read from the exporter: %v", exportedMetrics)
	}
}

// TestDashboardNamesOverflowMarkers: the per-owner panels name the label
// values the exporter really uses for the overflow and unknown owners.
func TestDashboardNamesOverflowMarkers(t *testing.T) {
	want := map[string][]string{
		"tcpclose_anomalies_by_comm_total": {`comm="` + exporter.Other + `"`, `comm="` + exporter.Unknown + `"`},
		"tcpclose_anomalies_by_pod_total":  {`"` + exporter.Other + `"`},
	}
	seen := map[string]bool{}
	for _, p := range allPanels(loadDashboard(t).Panels) {
		for _, tg := range p.Targets {
			for metric, markers := range want {
				if !strings.Contains(tg.Expr, metric) {
					continue
				}
				seen[metric] = true
				for _, m := range markers {
					if !strings.Contains(p.Description, m) {
						t.Errorf("panel %q shows %s but its description does not name %s", p.Title, metric, m)
					}
				}
			}
		}
	}
	for metric := range want {
		if !seen[metric] {
			t.Errorf("no panel shows %s", metric)
		}
	}
}

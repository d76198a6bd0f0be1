package kubetest

import (
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// TestChartRejectsBadValues: values.schema.json and the templates refuse
// values that would deploy something other than what the user meant, or
// more privileges than the daemon needs.
func TestChartRejectsBadValues(t *testing.T) {
	ch := loadChart(t)
	tests := []struct {
		name, values, wantErr string
	}{
		{"unknown key", "hostNetwork: true", "hostNetwork"},
		{"misspelt nested key", "serviceMonitor: {enabeld: true}", "enabeld"},
		{"privileged in securityContext", "securityContext: {privileged: true}", "privileged"},
		{"BPF again as an extra capability", "securityContext: {extraCapabilities: [BPF]}", "extraCapabilities"},
		{"ALL as an extra capability", "securityContext: {extraCapabilities: [ALL]}", "extraCapabilities"},
		{"lower-case capability", "securityContext: {extraCapabilities: [sys_admin]}", "extraCapabilities"},
		{"unquoted off is a YAML boolean", "pods: off", "pods"},
		{"relative runtime root", "runtimes: {containerd: {enabled: true, root: run/containerd}}", "root"},
		{"root with a trailing slash", "kubeletPods: {enabled: true, root: /var/lib/kubelet/}", "root"},
		{"unknown recursiveReadOnly", "hostMountsRecursiveReadOnly: Disabled", "hostMountsRecursiveReadOnly"},
		{"scheme in lower case", "webConfig: {scheme: https}", "scheme"},
		{"port out of range", "port: 70000", "port"},
		{"log level", "logLevel: verbose", "logLevel"},
		{"by-comm above the daemon's limit", "metricsByComm: 1001", "metricsByComm"},
		{"ring size with a unit the daemon refuses", "ringSize: 1T", "ringSize"},
		{"extra argument that is not a flag", "extraArgs: [serve]", "extraArgs"},
		{"no memory limit", "resources: {limits: {memory: null}}", "memory"},
		{"ServiceMonitor without its Service", "service: {enabled: false}", "serviceMonitor.enabled needs service.enabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := helmTemplate(ch, tt.values)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

// TestHelmLint runs `helm lint --strict` in process, with the defaults and
// with every value set TestManifests uses.
func TestHelmLint(t *testing.T) {
	for _, r := range renderings() {
		if !strings.HasPrefix(r.name, "helm/") {
			continue
		}
		t.Run(r.name, func(t *testing.T) {
			vals, err := chartutil.ReadValues([]byte(r.values))
			if err != nil {
				t.Fatal(err)
			}
			kv, err := chartutil.ParseKubeVersion("v1.30.0")
			if err != nil {
				t.Fatal(err)
			}
			res := lint.AllWithKubeVersion(chartDir, vals, release.Namespace, kv)
			for _, m := range res.Messages {
				// INFO (an icon is recommended) is not a finding.
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
		})
	}
}

func TestChartKubeVersion(t *testing.T) {
	ch := loadChart(t)
	for _, tt := range []struct {
		version string
		ok      bool
	}{
		{"v1.29.9", false}, // no recursiveReadOnly
		{"v1.30.0", true},
		{"v1.30.2-eks-1234", true},
		{"v1.37.0", true},
	} {
		if got := chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, tt.version); got != tt.ok {
			t.Errorf("kubeVersion %q accepts %s: %v, want %v", ch.Metadata.KubeVersion, tt.version, got, tt.ok)
		}
	}
	if ch.Metadata.APIVersion != "v2" || ch.Metadata.Name != "tcpclose-trace" || ch.Metadata.Type != "application" {
		t.Errorf("Chart.yaml: apiVersion %s name %s type %s", ch.Metadata.APIVersion, ch.Metadata.Name, ch.Metadata.Type)
	}
	if want := strings.TrimPrefix(image[strings.LastIndex(image, ":")+1:], "v"); ch.Metadata.AppVersion != want {
		t.Errorf("appVersion %s; the kustomize base deploys image tag %s", ch.Metadata.AppVersion, want)
	}
}

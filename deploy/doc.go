// Package deploy holds no Go code: it is where tcpclose-trace's deployment
// files live, next to the tests that keep them honest.
//
//   - prometheus/tcpclose-trace.rules.yml: alerting and recording rules, for
//     rule_files; tcpclose-trace.rules_test.yml is its promtool unit test.
//   - prometheus/prometheusrule.yaml: the same rules as a prometheus-operator
//     PrometheusRule.
//   - grafana/tcpclose-trace.json: a Grafana dashboard.
//   - kubernetes/: the DaemonSet and its objects for kustomize, and
//     helm/tcpclose-trace/: the same as a Helm chart. Their tests are in
//     kubetest/, a Go module of its own.
//
// The tests run promtool on the rules, check that the PrometheusRule carries
// the very same groups, and that the rules and the dashboard use only metric
// names the daemon exports.
package deploy

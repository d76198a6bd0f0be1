// Package kubetest holds no code: its tests check tcpclose-trace's
// Kubernetes manifests (deploy/kubernetes, built with kustomize) and Helm
// chart (deploy/helm/tcpclose-trace, rendered with default and other
// values).
//
// Every rendered document is decoded strictly into its Kubernetes or
// prometheus-operator API type (an unknown field, a duplicate key or an
// unknown kind fails), then checked: the least privilege the daemon runs
// with (never privileged, capabilities exactly BPF and PERFMON, read-only
// root and host mounts from an allow-list), probes, tolerations, resources,
// the Service and monitors selecting the pods' metrics port, the
// PrometheusRule equal to deploy/prometheus/tcpclose-trace.rules.yml, and
// the daemon's flags against its own -h output.
//
// It is a module of its own so that the Kubernetes, Helm and kustomize
// libraries stay out of tcpclose-trace's go.mod.
package kubetest

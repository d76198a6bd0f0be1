{{/* The chart's name, or nameOverride. */}}
{{- define "tcpclose-trace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The objects' name: fullnameOverride, else the release name, prefixed
with the chart's name unless it already holds it. */}}
{{- define "tcpclose-trace.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels that select the DaemonSet's pods. */}}
{{- define "tcpclose-trace.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tcpclose-trace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "tcpclose-trace.labels" -}}
{{ include "tcpclose-trace.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tcpclose-trace.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tcpclose-trace.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* A read-only host mount, at the same path in the container:
dict "name" NAME "path" PATH "root" $ */}}
{{- define "tcpclose-trace.hostMount" -}}
- name: {{ .name }}
  mountPath: {{ .path }}
  readOnly: true
  {{- with .root.Values.hostMountsRecursiveReadOnly }}
  recursiveReadOnly: {{ . }}
  {{- end }}
{{- end }}

{{/* The endpoint settings a ServiceMonitor and a PodMonitor share. */}}
{{- define "tcpclose-trace.endpoint" -}}
- port: metrics
  path: /metrics
  scheme: {{ lower .root.Values.webConfig.scheme }}
  interval: {{ .monitor.interval }}
  {{- with .monitor.scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
  {{- with .monitor.tlsConfig }}
  tlsConfig:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .monitor.basicAuth }}
  basicAuth:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  relabelings:
    - action: replace
      sourceLabels: [__meta_kubernetes_pod_node_name]
      targetLabel: instance
    {{- with .monitor.relabelings }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .monitor.metricRelabelings }}
  metricRelabelings:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

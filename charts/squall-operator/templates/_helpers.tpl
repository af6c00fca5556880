{{- define "squall-operator.name" -}}
{{- default .Chart.Name .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "squall-operator.labels" -}}
app.kubernetes.io/name: squall-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "squall-operator.selector" -}}
app.kubernetes.io/name: squall-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "squall-operator.serviceAccount" -}}
{{- default (include "squall-operator.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- /* NetworkPolicy peers that may scrape the workers' port 9464 besides the operator:
Prometheus when the chart's monitoring is on, plus networkPolicy.metricsFrom. */ -}}
{{- define "squall-operator.metricsPeers" -}}
{{- $peers := list -}}
{{- $p := .Values.networkPolicy.prometheus -}}
{{- if or .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled $p.enabled -}}
{{- $peer := dict -}}
{{- with $p.namespaceSelector }}{{ $_ := set $peer "namespaceSelector" . }}{{ end -}}
{{- with $p.podSelector }}{{ $_ := set $peer "podSelector" . }}{{ end -}}
{{- $peers = append $peers $peer -}}
{{- end -}}
{{- range .Values.networkPolicy.metricsFrom }}{{ $peers = append $peers . }}{{ end -}}
{{- toYaml $peers -}}
{{- end -}}

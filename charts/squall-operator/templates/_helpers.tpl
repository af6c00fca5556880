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

{{/* Where worker pods run: the watched namespace, or any. */}}
{{- define "squall-operator.workerNamespaces" -}}
{{- if .Values.watchNamespace -}}
matchNames: [{{ .Values.watchNamespace | quote }}]
{{- else -}}
any: true
{{- end -}}
{{- end -}}

{{/* path, interval and scrapeTimeout of a monitor's endpoint. */}}
{{- define "squall-operator.scrapeEndpoint" -}}
path: /metrics
{{- with .interval }}
interval: {{ . }}
{{- end }}
{{- with .scrapeTimeout }}
scrapeTimeout: {{ . }}
{{- end }}
{{- end -}}

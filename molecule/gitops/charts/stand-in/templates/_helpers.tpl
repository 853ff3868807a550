{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
{{- define "stand-in.commonLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{- end }}

{{- define "stand-in.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
{{ include "stand-in.commonLabels" . }}
{{- end }}

{{- define "stand-in.name" -}}
{{ .Release.Name }}-stand-in
{{- end }}

{{/* The value at a dotted path of .Values, as JSON {"v": value}; each upstream chart keeps
its switches somewhere else. Call with (list .Values "crds.install"). */}}
{{- define "stand-in.valueAt" -}}
{{- $node := index . 0 -}}
{{- range splitList "." (index . 1) -}}
{{- if kindIs "map" $node -}}{{- $node = get $node . -}}{{- else -}}{{- $node = "" -}}{{- end -}}
{{- end -}}
{{- toJson (dict "v" $node) -}}
{{- end }}

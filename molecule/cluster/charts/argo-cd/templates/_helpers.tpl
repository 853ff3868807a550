{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
{{- define "argo-cd.labels" -}}
app.kubernetes.io/part-of: argocd
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end }}

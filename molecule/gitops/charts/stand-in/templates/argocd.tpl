{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
{{/* The settings objects of the argo-cd chart, which a real application-controller reads
(it finds them by the part-of label). Each follows the chart's configs.<key>.create switch. */}}
{{- if .Values.standIn.argocdConfig }}
{{- $configs := .Values.configs | default dict }}
{{- range $name, $key := dict "argocd-cm" "cm" "argocd-cmd-params-cm" "params" "argocd-rbac-cm" "rbac" }}
{{- $config := get $configs $key | default dict }}
{{- if ne (toString $config.create) "false" }}
{{- $data := dict }}
{{- range $k, $v := omit $config "create" "annotations" }}
{{- $_ := set $data $k (toString $v) }}
{{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $name }}
  namespace: {{ $.Release.Namespace }}
  labels:
    app.kubernetes.io/name: {{ $name }}
    app.kubernetes.io/part-of: argocd
    {{- include "stand-in.commonLabels" $ | nindent 4 }}
  {{- with $config.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- with $data }}
data:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
{{- end }}
{{- if ne (toString ((get $configs "secret") | default dict).createSecret) "false" }}
---
{{/* No data: Argo CD adds server.secretkey itself on first start, as with the real chart. */}}
apiVersion: v1
kind: Secret
type: Opaque
metadata:
  name: argocd-secret
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/name: argocd-secret
    app.kubernetes.io/part-of: argocd
    {{- include "stand-in.commonLabels" . | nindent 4 }}
{{- end }}
{{- end }}

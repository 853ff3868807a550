{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "argo-cd.labels" . | nindent 4 }}
data:
  {{- range $key, $value := .Values.configs.cm }}
  {{ $key }}: {{ $value | toString | quote }}
  {{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cmd-params-cm
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "argo-cd.labels" . | nindent 4 }}
data:
  {{- range $key, $value := .Values.configs.params }}
  {{ $key }}: {{ $value | toString | quote }}
  {{- end }}

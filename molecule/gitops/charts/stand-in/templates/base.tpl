{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
{{/* What every stand-in renders: the values it was given, for the test to read back. */}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-plinth-values
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "stand-in.labels" . | nindent 4 }}
data:
  {{- toYaml (dict "values.yaml" (toYaml .Values)) | nindent 2 }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "stand-in.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "stand-in.labels" . | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "stand-in.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "stand-in.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  ports:
    - name: http
      port: 80
      targetPort: 8080

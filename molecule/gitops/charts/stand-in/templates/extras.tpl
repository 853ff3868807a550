{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
{{/* Objects a test asks for: none of them by default. */}}
{{- if .Values.standIn.clusterRole }}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "stand-in.name" . }}
  labels:
    {{- include "stand-in.labels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: [configmaps]
    verbs: [get]
{{- end }}
{{- if or .Values.standIn.deployment .Values.standIn.unhealthy }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "stand-in.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "stand-in.labels" . | nindent 4 }}
spec:
  replicas: 1
  progressDeadlineSeconds: {{ int .Values.standIn.progressDeadlineSeconds }}
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
      app.kubernetes.io/component: stand-in
  template:
    metadata:
      labels:
        app.kubernetes.io/instance: {{ .Release.Name }}
        app.kubernetes.io/component: stand-in
    spec:
      serviceAccountName: {{ include "stand-in.name" . }}
      {{- if .Values.standIn.unhealthy }}
      {{- /* No node carries this label: the pods stay Pending whatever runs them. */}}
      nodeSelector:
        plinth.io/stand-in: nowhere
      {{- end }}
      automountServiceAccountToken: false
      {{- /* Admissible under the restricted Pod Security level, so pods are created and stay Pending. */}}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: stand-in
          image: registry.invalid/plinth/stand-in:never
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
{{- end }}

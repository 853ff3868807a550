{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: argocd-server
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "argo-cd.labels" . | nindent 4 }}
---
apiVersion: v1
kind: Service
metadata:
  name: argocd-server
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "argo-cd.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: argocd-server
  ports:
    - name: http
      port: 80
      targetPort: 8080
---
# No kubelet runs in the test cluster, so the Deployment asks for no pod: the deployment
# controller still has to observe it before Helm's wait counts it ready. The requested
# replicas are kept in an annotation for the test to read.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: argocd-server
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "argo-cd.labels" . | nindent 4 }}
  annotations:
    plinth.io/requested-replicas: {{ .Values.server.replicas | quote }}
spec:
  replicas: 0
  selector:
    matchLabels:
      app.kubernetes.io/name: argocd-server
  template:
    metadata:
      labels:
        app.kubernetes.io/name: argocd-server
    spec:
      serviceAccountName: argocd-server
      automountServiceAccountToken: false
      {{- with .Values.global.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.global.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        runAsNonRoot: true
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: server
          image: registry.invalid/argocd:test
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]

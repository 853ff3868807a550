{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: cilium-config
  namespace: {{ .Release.Namespace }}
data:
  cluster-name: {{ (.Values.cluster).name | default "" | quote }}
  kube-proxy-replacement: {{ .Values.kubeProxyReplacement | toString | quote }}
  k8s-service-host: {{ .Values.k8sServiceHost | default "" | quote }}

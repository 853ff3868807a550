{{/* Copyright: Plinth contributors. SPDX-License-Identifier: Apache-2.0 */}}
{{- $s := .Values.standIn }}
{{- if not (has $s.crd (list "none" "small" "large")) }}
{{- fail (printf "standIn.crd: %q is not one of none, small, large" (toString $s.crd)) }}
{{- end }}
{{- $on := ne $s.crd "none" }}
{{- if and $on $s.crdToggle }}
{{- $on = ne (toString (include "stand-in.valueAt" (list .Values $s.crdToggle) | fromJson).v) "false" }}
{{- end }}
{{- $kindsOn := true }}
{{- if $s.crdToggle }}
{{- $kindsOn = ne (toString (include "stand-in.valueAt" (list .Values $s.crdToggle) | fromJson).v) "false" }}
{{- end }}
{{- if $kindsOn }}
{{- range $s.kinds }}
---
{{- /* The API of a kind the platform's manifests use, with no schema of its own. */}}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {{ .plural }}.{{ .group }}
  labels:
    {{- include "stand-in.labels" $ | nindent 4 }}
spec:
  group: {{ .group }}
  names:
    kind: {{ .kind }}
    listKind: {{ .kind }}List
    plural: {{ .plural }}
    singular: {{ lower .kind }}
  scope: {{ .scope | default "Namespaced" }}
  versions:
    - name: {{ .version | default "v1" }}
      served: true
      storage: true
      subresources:
        status: {}
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
{{- end }}
{{- end }}
{{- if $on }}
---
{{- $large := eq $s.crd "large" }}
{{- $kind := ternary "LargeStandIn" "StandIn" $large }}
{{- $group := printf "%s.stand-in.plinth.io" .Chart.Name }}
{{- $annotations := dict }}
{{- if $s.crdAnnotations }}
{{- $annotations = (include "stand-in.valueAt" (list .Values $s.crdAnnotations) | fromJson).v | default dict }}
{{- end }}
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {{ lower $kind }}s.{{ $group }}
  labels:
    {{- include "stand-in.labels" . | nindent 4 }}
  {{- with $annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  group: {{ $group }}
  names:
    kind: {{ $kind }}
    listKind: {{ $kind }}List
    plural: {{ lower $kind }}s
    singular: {{ lower $kind }}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
          {{- if $large }}
          description: {{ repeat (int $s.largeCrdBytes) "x" }}
          {{- end }}
{{- end }}

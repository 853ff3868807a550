# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kube-prometheus-stack (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="monitoring", title="kube-prometheus-stack", namespace="monitoring", project="platform", pool="worker", enabled=True, pod_security="privileged",
    releases=[Release("prometheus-operator-crds", 10, {"repo": "https://prometheus-community.github.io/helm-charts", "name": "prometheus-operator-crds", "version": "24.0.0"}, values=lambda spec, c: {}, chart_option="crds_chart", server_side_apply=True), Release("kube-prometheus-stack", 60, {"repo": "https://prometheus-community.github.io/helm-charts", "name": "kube-prometheus-stack", "version": "88.0.0"}, values=lambda spec, c: {}, server_side_apply=True)],
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Rook-Ceph (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="rook_ceph", title="Rook-Ceph", namespace="rook-ceph", project="infra", pool="storage", enabled=True, pod_security="privileged",
    releases=[Release("rook-ceph", 10, {"repo": "https://charts.rook.io/release", "name": "rook-ceph", "version": "1.20.0"}, values=lambda spec, c: {}), Release("rook-ceph-cluster", 20, {"repo": "https://charts.rook.io/release", "name": "rook-ceph-cluster", "version": "1.20.0"}, values=lambda spec, c: {}, chart_option="cluster_chart")],
)

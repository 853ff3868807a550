# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cilium (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="cilium", title="Cilium", namespace="kube-system", project="infra", pool=None, enabled=True, pod_security="privileged",
    releases=[Release("cilium", 0, {"repo": "https://helm.cilium.io", "name": "cilium", "version": "1.18.4"}, values=lambda spec, c: {})],
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Argo CD (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="argocd", title="Argo CD", namespace="argocd", project="infra", pool="worker", enabled=True, pod_security="restricted",
    releases=[Release("argo-cd", 0, {"repo": "https://argoproj.github.io/argo-helm", "name": "argo-cd", "version": "10.1.0"}, values=lambda spec, c: {})],
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""metrics-server (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="metrics_server", title="metrics-server", namespace="metrics-server", project="infra", pool="worker", enabled=True, pod_security="restricted",
    releases=[Release("metrics-server", 10, {"repo": "https://kubernetes-sigs.github.io/metrics-server", "name": "metrics-server", "version": "3.13.0"}, values=lambda spec, c: {})],
)

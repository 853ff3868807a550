# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""CloudNativePG (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="cloudnative_pg", title="CloudNativePG", namespace="cnpg-system", project="infra", pool="worker", enabled=True, pod_security="restricted",
    releases=[Release("cloudnative-pg", 10, {"repo": "https://cloudnative-pg.github.io/charts", "name": "cloudnative-pg", "version": "0.26.0"}, values=lambda spec, c: {})],
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Kong Gateway (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="kong", title="Kong Gateway", namespace="kong", project="platform", pool="gateway", enabled=True, pod_security="restricted",
    releases=[Release("kong", 60, {"repo": "https://charts.konghq.com", "name": "kong", "version": "3.4.0"}, values=lambda spec, c: {})],
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cloudflare Tunnel (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="cloudflared", title="Cloudflare Tunnel", namespace="cloudflared", project="platform", pool="worker", enabled=True, pod_security="restricted",
    releases=[Release("cloudflared", 70, None, manifests=lambda spec, c: [])],
)

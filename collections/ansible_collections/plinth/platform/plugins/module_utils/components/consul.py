# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Consul (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="consul", title="Consul", namespace="consul", project="platform", pool="worker", enabled=True, pod_security="restricted",
    releases=[Release("consul", 30, {"repo": "https://helm.releases.hashicorp.com", "name": "consul", "version": "2.0.0"}, values=lambda spec, c: {})],
)

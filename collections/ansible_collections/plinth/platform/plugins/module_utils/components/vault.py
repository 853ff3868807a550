# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Vault (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="vault", title="Vault", namespace="vault", project="platform", pool="worker", enabled=True, pod_security="restricted",
    releases=[Release("vault", 40, {"repo": "https://helm.releases.hashicorp.com", "name": "vault", "version": "0.34.0"}, values=lambda spec, c: {})],
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""External Secrets Operator (placeholder: values not written yet)."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release

__metaclass__ = type

COMPONENT = Component(
    key="external_secrets", title="External Secrets Operator", namespace="external-secrets",
    project="platform", pool="worker", enabled=True, pod_security="restricted",
    options={
        "replicas": s.Int(2, minimum=1),
        "store_name": s.Str("vault", checks=[s.dns_subdomain]),
    },
    releases=[Release("external-secrets", 50, {"repo": "https://charts.external-secrets.io",
                                               "name": "external-secrets", "version": "2.9.0"},
                      values=lambda spec, c: {})],
)

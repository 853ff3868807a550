# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Platform components: what each one deploys and how its values are made.

A component is one key of ``plinth_components``.  It deploys one or more
releases; each release becomes one Argo CD Application, one values file
(``infra/<release>/values-<env>.yaml``) and optionally raw manifests
(``infra/<release>/<env>/*.yaml``).  A release without a chart is raw
manifests only.
"""

from __future__ import absolute_import, annotations, division, print_function

import importlib

__metaclass__ = type

# Order matters only for stable output; sync order comes from each release's wave.
MODULES = (
    "cilium",
    "argocd",
    "snapshot_controller",
    "rook_ceph",
    "kubelet_csr_approver",
    "metrics_server",
    "monitoring",
    "logging",
    "consul",
    "vault",
    "external_secrets",
    "cloudnative_pg",
    "kong",
    "cloudflared",
    "reloader",
)


class Release:
    """One Helm release (or raw manifest set) of a component."""

    def __init__(self, name, wave, chart=None, values=None, manifests=None, namespace=None,
                 chart_option="chart", server_side_apply=False, ignore_differences=None):
        self.name = name                      # release name and infra/<name>/ folder
        self.wave = wave                      # argocd.argoproj.io/sync-wave
        self.chart = chart                    # default {"repo", "name", "version"}, or None
        self.values = values                  # f(spec, settings) -> dict of Helm values
        self.manifests = manifests            # f(spec, settings) -> list of Kubernetes documents
        self.namespace = namespace            # None: the component's namespace
        self.chart_option = chart_option      # inventory key that overrides the chart
        self.server_side_apply = server_side_apply
        self.ignore_differences = ignore_differences or []


class Component:
    """A platform component as declared under ``plinth_components.<key>``."""

    def __init__(self, key, title, namespace, project, releases, options=None, pool="worker",
                 enabled=True, pod_security="restricted", check=None, doc=""):
        self.key = key
        self.title = title
        self.namespace = namespace
        self.project = project                # AppProject: infra or platform
        self.releases = releases
        self.options = options or {}          # key -> schema.Field, beyond the common keys
        self.pool = pool                      # default node pool (None: runs everywhere)
        self.enabled = enabled                # default of `enabled`
        self.pod_security = pod_security      # Pod Security Admission level of the namespace
        self.check = check                    # f(spec, settings, errors, path): cross-checks
        self.doc = doc


def registry():
    """All components, in declaration order."""
    found = []
    for name in MODULES:
        module = importlib.import_module(
            "ansible_collections.plinth.platform.plugins.module_utils.components." + name)
        found.append(module.COMPONENT)
    return found

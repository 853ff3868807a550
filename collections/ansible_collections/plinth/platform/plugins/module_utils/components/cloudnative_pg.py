# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""CloudNativePG: the PostgreSQL operator (cloudnative-pg chart) and its CRDs.

The operator watches every namespace; the PostgreSQL clusters themselves are
declared by their users (Kong renders its own ``Cluster``).
"""

from __future__ import absolute_import, annotations, division, print_function

import copy

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release, common

__metaclass__ = type

RELEASE = "cloudnative-pg"
CHART = {"repo": "https://cloudnative-pg.github.io/charts", "name": "cloudnative-pg", "version": "0.29.0"}

# The operator re-signs its webhooks' CA bundle at runtime; Argo CD must not undo it.
IGNORE_DIFFERENCES = [
    {"group": "admissionregistration.k8s.io", "kind": kind,
     "jqPathExpressions": [".webhooks[]?.clientConfig.caBundle"]}
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
]


def operator_labels():
    """The chart's selector labels (its full name equals the release name)."""
    return {"app.kubernetes.io/name": "cloudnative-pg", "app.kubernetes.io/instance": RELEASE}


def values(spec, settings):
    pool = settings["pool"]
    monitoring = common.enabled(spec, "monitoring")
    return {
        "replicaCount": settings["replicas"],
        "crds": {"create": True},
        "config": {"clusterWide": True},
        "nodeSelector": common.node_selector(spec, pool),
        "tolerations": common.tolerations(spec, pool),
        "topologySpreadConstraints": [common.spread(operator_labels())],
        "resources": copy.deepcopy(settings["resources"]),
        # The PodMonitor CRD comes from the monitoring component's earlier CRD release.
        "monitoring": {"podMonitorEnabled": monitoring, "grafanaDashboard": {"create": False}},
    }


def manifests(spec, settings):
    """A PodDisruptionBudget: the chart has none, and its webhooks fail closed."""
    replicas = settings["replicas"]
    if replicas < 2:
        return []
    return [common.pod_disruption_budget(RELEASE, settings["namespace"], operator_labels(), replicas)]


def check(spec, settings, errors, path):
    common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])


COMPONENT = Component(
    key="cloudnative_pg", title="CloudNativePG", namespace="cnpg-system", project="infra", pool="worker",
    enabled=True, pod_security="restricted",
    options={
        "replicas": s.Int(2, minimum=1, doc="operator pods (leader election; every pod serves the webhooks)"),
        "resources": s.Resources("100m", "256Mi", "1", "512Mi"),
    },
    check=check,
    releases=[Release(RELEASE, 10, CHART, values=values, manifests=manifests,
                      server_side_apply=True,  # the Cluster and Pooler CRDs exceed client-side apply's limit
                      ignore_differences=IGNORE_DIFFERENCES)],
    doc="CloudNativePG operator for in-cluster PostgreSQL (Kong's config store by default).",
)

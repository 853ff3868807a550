# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""CloudNativePG: the PostgreSQL operator (cloudnative-pg chart) and its CRDs.

The operator watches every namespace; the PostgreSQL clusters themselves are
declared by their users (Kong renders its own ``Cluster``).

Its namespace denies everything but what the operator needs: DNS, the API
server, the instance managers of the clusters it runs (their status port, and
PostgreSQL itself), the API server's calls to its webhooks and Prometheus.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release, common

__metaclass__ = type

RELEASE = "cloudnative-pg"
METRICS_PORT = 8080               # the manager's "metrics" container port
WEBHOOK_PORT = 9443               # the chart's webhook.port
INSTANCE_STATUS_PORT = 8000       # each PostgreSQL pod's instance manager
POSTGRES_PORT = 5432
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


def _grafana(spec):
    """Whether Grafana runs to load the chart's dashboard."""
    if not common.enabled(spec, "monitoring"):
        return False
    return bool(((spec["components"]["monitoring"].get("grafana")) or {}).get("enabled"))


def _dashboard(spec):
    if not _grafana(spec):
        return {"create": False}
    # Grafana's sidecar loads ConfigMaps with this label from every namespace.
    return {"create": True, "sidecarLabel": "grafana_dashboard", "sidecarLabelValue": "1"}


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
        "monitoring": {"podMonitorEnabled": monitoring, "grafanaDashboard": _dashboard(spec)},
    }


def cluster_namespaces(spec):
    """The namespaces that hold PostgreSQL Clusters this inventory declares."""
    kong = spec["components"].get("kong") or {}
    if kong.get("enabled") and (kong.get("database") or {}).get("mode") == "cloudnative-pg":
        return [kong["namespace"]]
    return []


def network_policies(spec, settings):
    namespace = settings["namespace"]
    policies = common.baseline_policies(namespace) + [
        common.allow_apiserver(spec, namespace),
        # The API server calls the webhooks from the host network: no namespace to match.
        common.allow_from("allow-webhook", namespace, operator_labels(), None, [WEBHOOK_PORT]),
    ]
    clusters = cluster_namespaces(spec)
    if clusters:
        policies.append(common.allow_to("allow-to-instances", namespace, operator_labels(), clusters,
                                        [INSTANCE_STATUS_PORT, POSTGRES_PORT]))
    if common.enabled(spec, "monitoring"):
        policies.append(common.allow_from("allow-metrics", namespace, operator_labels(),
                                          [spec["components"]["monitoring"]["namespace"]], [METRICS_PORT]))
    return policies


def manifests(spec, settings):
    """The namespace's NetworkPolicies, and a PodDisruptionBudget: the chart has none, and its webhooks
    fail closed."""
    docs = network_policies(spec, settings)
    replicas = settings["replicas"]
    if replicas >= 2:
        docs.append(common.pod_disruption_budget(RELEASE, settings["namespace"], operator_labels(), replicas))
    return docs


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

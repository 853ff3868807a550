# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Business apps: Helm values and raw manifests for each ``plinth_apps`` entry.

Values follow the layout of a ``helm create`` chart (replicaCount, autoscaling,
resources, podSecurityContext, securityContext, nodeSelector, tolerations,
affinity, service, ingress), which most in-house charts start from; anything
else goes through the app's ``values`` and is merged last.

An app's ``metrics`` are scraped through a Service and a ServiceMonitor that
Plinth renders itself: an arbitrary chart may have neither, or name its ports
in its own way.  The metrics port may be the app's own port (metrics served
beside the API) or another one; both are fine.  Without the monitoring
component nothing would read a ServiceMonitor (its CRD would be missing too),
so ``metrics`` is then ignored rather than refused: the same app definition
serves an environment without monitoring.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy

from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RUN_AS = 10001
MONITOR_API = "monitoring.coreos.com/v1"
METRICS_PORT_NAME = "metrics"


def instance_labels(app):
    return {"app.kubernetes.io/instance": app["name"]}


def values(spec, app):
    """Helm values for one business app."""
    out = {
        "replicaCount": app["replicas"],
        "service": {"port": app["port"]},
        "resources": copy.deepcopy(app["resources"]),
        "podSecurityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "nodeSelector": common.node_selector(spec, app["pool"]),
        "tolerations": common.tolerations(spec, app["pool"]),
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {
                "labelSelector": {"matchLabels": instance_labels(app)},
                "topologyKey": "kubernetes.io/hostname",
            },
        }]}},
        "autoscaling": {"enabled": False},
        "ingress": {"enabled": False},
    }
    if app["image"]:
        out["image"] = dict(app["image"])
    scaling = app["autoscaling"]
    if scaling:
        out["autoscaling"] = {
            "enabled": True,
            "minReplicas": scaling["min"],
            "maxReplicas": scaling["max"],
            "targetCPUUtilizationPercentage": scaling["cpu_utilization"],
        }
    if app["ingress"]:
        out["ingress"] = {
            "enabled": True,
            "className": "kong",
            "hosts": [{"host": app["ingress"]["host"],
                       "paths": [{"path": app["ingress"]["path"], "pathType": "Prefix"}]}],
        }
    return merge(out, app["values"])


def manifests(spec, app, first_in_namespace):
    """ExternalSecrets and NetworkPolicies for one app.

    Namespace-wide policies (default deny, DNS) belong to the first app of a
    shared namespace, so two Applications never own the same object.
    """
    ns = app["namespace"]
    name = app["name"]
    docs = []
    if first_in_namespace:
        docs += [common.default_deny(ns), common.allow_dns(ns)]
    ingress = _ingress(spec, app)
    if ingress:
        docs.append(ingress)
    docs += metrics_manifests(spec, app)
    if app["egress"]:
        docs.append(common.allow_to("%s-egress" % name, ns, instance_labels(app), app["egress"], []))
    for secret, ref in sorted(app["secrets"].items()):
        data = dict((key, (ref["path"], key)) for key in ref["keys"])
        docs.append(common.external_secret(spec, secret, ns, data, refresh=ref.get("refresh"),
                                           store=ref.get("store")))
    return docs


def _ingress(spec, app):
    """Kong and Prometheus in on the app's port, Prometheus also on its metrics port; None when neither runs."""
    sources = []
    if common.enabled(spec, "kong"):
        sources.append(spec["components"]["kong"]["namespace"])
    monitoring = spec["components"]["monitoring"]["namespace"] if common.enabled(spec, "monitoring") else None
    if monitoring:
        sources.append(monitoring)
    if not sources:
        return None
    policy = common.allow_from("%s-ingress" % app["name"], app["namespace"], instance_labels(app), sources,
                               [app["port"]])
    port = scraped_port(spec, app)
    if port is not None and port != app["port"]:
        policy["spec"]["ingress"].append({"from": [common.namespace_peer(monitoring)],
                                          "ports": common.tcp_ports(port)})
    return policy


def scraped_port(spec, app):
    """The port Prometheus scrapes the app on, or None when it is not scraped."""
    if not app.get("metrics") or not common.enabled(spec, "monitoring"):
        return None
    return app["metrics"]["port"]


def metrics_manifests(spec, app):
    """The Service ``<app>-metrics`` in front of the app's pods and its ServiceMonitor (none unless scraped)."""
    port = scraped_port(spec, app)
    if port is None:
        return []
    name = "%s-metrics" % app["name"]
    ns = app["namespace"]
    # The component label keeps the monitor off the chart's own Services, which share the instance label.
    labels = dict(instance_labels(app), **{"app.kubernetes.io/component": "metrics"})
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(name, ns, labels=labels),
        "spec": {
            "selector": instance_labels(app),
            "ports": [{"name": METRICS_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
    monitor = {
        "apiVersion": MONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": common.metadata(name, ns, labels=labels),
        "spec": {
            "selector": {"matchLabels": labels},
            "namespaceSelector": {"matchNames": [ns]},
            "endpoints": [{"port": METRICS_PORT_NAME, "path": app["metrics"]["path"],
                           "interval": app["metrics"]["interval"]}],
        },
    }
    return [service, monitor]


def check_metrics(app, errors, path):
    """Cross-checks of ``plinth_apps[i].metrics`` beyond the schema's."""
    metrics = app.get("metrics")
    if not metrics or not isinstance(metrics.get("path"), str):
        return
    where = path + ".metrics.path"
    if not metrics["path"].startswith("/"):
        errors.add(where, metrics["path"], "must be an HTTP path starting with /, like /metrics")
    elif any(c in metrics["path"] for c in "?# \t"):
        errors.add(where, metrics["path"], "must be a plain path: no query, fragment or whitespace")


def merge(base, extra):
    """Deep-merge ``extra`` into a copy of ``base``; ``extra`` wins."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Business apps: Helm values and raw manifests for each ``plinth_apps`` entry.

Values follow the layout of a ``helm create`` chart (replicaCount, autoscaling,
resources, podSecurityContext, securityContext, nodeSelector, tolerations,
affinity, service, ingress), which most in-house charts start from; anything
else goes through the app's ``values`` and is merged last.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy

from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RUN_AS = 10001


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
    sources = []
    if common.enabled(spec, "kong"):
        sources.append(spec["components"]["kong"]["namespace"])
    if common.enabled(spec, "monitoring"):
        sources.append(spec["components"]["monitoring"]["namespace"])
    if sources:
        docs.append(common.allow_from("%s-ingress" % name, ns, instance_labels(app), sources, [app["port"]]))
    if app["egress"]:
        docs.append(common.allow_to("%s-egress" % name, ns, instance_labels(app), app["egress"], []))
    for secret, ref in sorted(app["secrets"].items()):
        data = dict((key, (ref["path"], key)) for key in ref["keys"])
        docs.append(common.external_secret(spec, secret, ns, data))
    return docs


def merge(base, extra):
    """Deep-merge ``extra`` into a copy of ``base``; ``extra`` wins."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

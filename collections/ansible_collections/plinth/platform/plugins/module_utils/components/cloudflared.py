# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cloudflare Tunnel: cloudflared as raw manifests (no chart).

The tunnel is remotely managed: its public host names and the origin they
route to (the Kong proxy Service) are set on the tunnel in Cloudflare, and the
pods only carry the tunnel token.  The token lives in Vault and reaches the
pods through an ExternalSecret; nothing secret is written here.
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress
import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

NAME = "cloudflared"
SELECTOR = {"app.kubernetes.io/name": NAME}
TOKEN_SECRET = "cloudflared-token"
TOKEN_PROPERTY = "token"
METRICS_PORT = 2000
# Cloudflare's edge: QUIC (UDP) or HTTP/2 (TCP) on 7844, its API on 443.
EDGE_PORTS = [("TCP", 7844), ("UDP", 7844), ("TCP", 443)]
# Kong chart's proxy container ports (HTTP and TLS): policies match pod ports.
GATEWAY_PORTS = [8000, 8443]
# Never "the internet": private, shared and link-local ranges stay closed.
NOT_INTERNET = {
    4: ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"],
    6: ["fc00::/7", "fe80::/10"],
}
VAULT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


def vault_path(value):
    if not VAULT_PATH.match(value):
        return "must be a Vault KV path like platform/cloudflared (no leading or trailing '/')"
    return None


OPTIONS = {
    "replicas": s.Int(2, minimum=1),
    "image": s.Dict({
        "repository": s.Str("cloudflare/cloudflared"),
        "tag": s.Str("2026.8.2"),
    }),
    "token_vault_path": s.Str("platform/cloudflared", checks=[vault_path],
                              doc="Vault KV path whose property 'token' holds the tunnel token"),
    "resources": s.Resources("50m", "64Mi", "500m", "256Mi"),
}


def _probe(period, failures):
    return {
        "httpGet": {"path": "/ready", "port": "metrics"},
        "initialDelaySeconds": 10,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def _container(settings):
    image = settings["image"]
    return {
        "name": NAME,
        "image": "%s:%s" % (image["repository"], image["tag"]),
        "imagePullPolicy": "IfNotPresent",
        "command": ["cloudflared", "tunnel", "--no-autoupdate",
                    "--metrics", "0.0.0.0:%d" % METRICS_PORT, "run"],
        "env": [{"name": "TUNNEL_TOKEN",
                 "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": TOKEN_PROPERTY}}}],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        # /ready answers 200 only while the tunnel holds a connection to the edge.
        "livenessProbe": _probe(10, 3),
        "readinessProbe": _probe(5, 2),
        "resources": settings["resources"],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _deployment(spec, settings):
    namespace = settings["namespace"]
    placed = common.placement(spec, settings["pool"])
    pod_spec = {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            # The image's distroless "nonroot" user.
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": placed["nodeSelector"],
        "tolerations": placed["tolerations"],
        "topologySpreadConstraints": [common.spread(SELECTOR)],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"labelSelector": {"matchLabels": dict(SELECTOR)},
                                "topologyKey": "kubernetes.io/hostname"},
        }]}},
        # cloudflared drains its connections for up to 30 s on SIGTERM.
        "terminationGracePeriodSeconds": 45,
        "containers": [_container(settings)],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(NAME, namespace, labels=SELECTOR),
        "spec": {
            "replicas": settings["replicas"],
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": dict(SELECTOR)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": dict(SELECTOR)}, "spec": pod_spec},
        },
    }


def _service_account(settings):
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.metadata(NAME, settings["namespace"], labels=SELECTOR),
        "automountServiceAccountToken": False,
    }


def _internet_blocks(spec):
    """ipBlocks for the public IPv4 and IPv6 internet, cluster networks excluded."""
    blocks = []
    for version, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        closed = [ipaddress.ip_network(c) for c in NOT_INTERNET[version]]
        for key in ("pod_cidr", "service_cidr"):
            try:
                net = ipaddress.ip_network(spec[key])
            except (TypeError, ValueError):
                continue
            if net.version == version:
                closed.append(net)
        collapsed = sorted(ipaddress.collapse_addresses(closed))
        blocks.append({"ipBlock": {"cidr": everything, "except": [str(n) for n in collapsed]}})
    return blocks


def _allow_edge(spec, namespace):
    return common.network_policy("allow-cloudflare-edge", namespace, SELECTOR, egress=[{
        "to": _internet_blocks(spec),
        "ports": [{"protocol": proto, "port": port} for proto, port in EDGE_PORTS],
    }])


def _network_policies(spec, settings):
    namespace = settings["namespace"]
    policies = common.baseline_policies(namespace) + [_allow_edge(spec, namespace)]
    kong = spec["components"].get("kong") or {}
    if kong.get("enabled"):
        policies.append(common.allow_to("allow-gateway", namespace, SELECTOR, [kong["namespace"]], GATEWAY_PORTS))
    monitoring = spec["components"].get("monitoring") or {}
    if monitoring.get("enabled"):
        policies.append(common.allow_from("allow-metrics", namespace, SELECTOR,
                                          [monitoring["namespace"]], [METRICS_PORT]))
    return policies


def _pod_monitor(settings):
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": common.metadata(NAME, settings["namespace"], labels=SELECTOR),
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
        },
    }


def manifests(spec, settings):
    namespace = settings["namespace"]
    token = common.external_secret(
        spec, TOKEN_SECRET, namespace, {TOKEN_PROPERTY: (settings["token_vault_path"], TOKEN_PROPERTY)})
    # The Secret must exist before the pods that read it start.
    token["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": "-1"}
    docs = [_service_account(settings), token, _deployment(spec, settings)]
    if settings["replicas"] > 1:
        docs.append(common.pod_disruption_budget(NAME, namespace, SELECTOR, settings["replicas"], labels=SELECTOR))
    docs += _network_policies(spec, settings)
    if common.enabled(spec, "monitoring"):
        docs.append(_pod_monitor(settings))
    return docs


def check(spec, settings, errors, path):
    common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])
    tag = settings["image"]["tag"]
    if tag == "latest" or not tag:
        errors.add(path + ".image.tag", tag, "pin a concrete cloudflared version (e.g. 2026.8.2), not 'latest'")
    if not common.enabled(spec, "external_secrets"):
        errors.add(path + ".enabled", True, "needs plinth_components.external_secrets.enabled: true "
                                            "(the tunnel token comes from Vault through an ExternalSecret)")


COMPONENT = Component(
    key="cloudflared", title="Cloudflare Tunnel", namespace="cloudflared", project="platform", pool="worker",
    enabled=True, pod_security="restricted", options=OPTIONS, check=check,
    releases=[Release("cloudflared", 70, None, manifests=manifests)],
    doc="Remotely managed Cloudflare Tunnel to the Kong gateway; token from Vault.",
)

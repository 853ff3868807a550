# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""metrics-server: the resource metrics API that HorizontalPodAutoscalers read.

Kubelet TLS: kubeadm's kubelets serve a self-signed certificate unless
``serverTLSBootstrap: true`` has them request one from the cluster CA (Plinth's
default) and something approves those CSRs (the ``kubelet_serving_certs`` role
at bootstrap, the ``kubelet_csr_approver`` component after that).  metrics-server
verifies kubelets against the cluster CA; ``kubelet_insecure_tls: true`` skips
the check, at the price of trusting whatever answers on a node's address.

NetworkPolicies: its pods read the API, scrape every kubelet, and are called
by the API server through the APIService on their secure port.  The API
server runs on the host network and its packets reach a pod on another node
with whatever source address the route gives them (the host's, or the CNI's
own on tunnelled paths), so that port is open to every source; each request
on it is authenticated and authorized against the API server anyway.
Prometheus scrapes the same port.
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RELEASE = "metrics-server"
# The chart's containerPort (its --secure-port): the APIService and /metrics.
SECURE_PORT = 10250
# The kubelets' port, as each Node reports it (--kubelet-use-node-status-port).
KUBELET_PORT = 10250

OPTIONS = {
    "replicas": s.Int(2, minimum=1, doc="metrics-server pods, one per host of the pool."),
    "kubelet_insecure_tls": s.Bool(False, doc="Skip verification of kubelet serving certificates "
                                              "(needed when kubelets serve self-signed ones)."),
}


def _selector():
    return {"app.kubernetes.io/name": "metrics-server", "app.kubernetes.io/instance": RELEASE}


def _args(settings):
    args = [
        "--cert-dir=/tmp",
        # Node names need not resolve in cluster DNS on bare metal; the InternalIP always routes.
        "--kubelet-preferred-address-types=InternalIP",
        "--kubelet-use-node-status-port",
        "--metric-resolution=15s",
    ]
    if settings["kubelet_insecure_tls"]:
        args.append("--kubelet-insecure-tls")
    return args


def values(spec, settings):
    replicas = settings["replicas"]
    result = dict(common.placement(spec, settings["pool"]), **{
        "replicas": replicas,
        # Replaces the chart's list: its address types would let a name win over the IP.
        "defaultArgs": _args(settings),
        "affinity": common.anti_affinity(_selector()) if replicas > 1 else {},
        "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": common.pdb_min_available(replicas)},
    })
    if common.enabled(spec, "monitoring"):
        # /metrics needs no token for Prometheus; the ServiceMonitor CRD comes in an earlier wave.
        result["metrics"] = {"enabled": True}
        result["serviceMonitor"] = {"enabled": True}
    return result


def kubelet_peers(spec):
    """ipBlocks of every host; None when a host is known by name only and can be matched by no block."""
    blocks = []
    for _host, info in sorted(spec["hosts"].items()):
        try:
            address = ipaddress.ip_address(info["address"])
        except ValueError:
            return None
        blocks.append({"ipBlock": {"cidr": "%s/%d" % (address, address.max_prefixlen)}})
    return blocks


def network_policies(spec, settings):
    namespace = settings["namespace"]
    kubelets = {"ports": common.tcp_ports(KUBELET_PORT)}
    peers = kubelet_peers(spec)
    if peers is not None:
        kubelets["to"] = peers
    return common.baseline_policies(namespace) + [
        common.allow_apiserver(spec, namespace),
        common.network_policy("allow-kubelets", namespace, _selector(), egress=[kubelets]),
        common.allow_from("allow-apiservice", namespace, _selector(), None, [SECURE_PORT]),
    ]


def manifests(spec, settings):
    return network_policies(spec, settings)


def check(spec, settings, errors, path):
    if not settings["kubelet_insecure_tls"] and not common.enabled(spec, "kubelet_csr_approver"):
        errors.add(path + ".kubelet_insecure_tls", False,
                   "metrics-server verifies kubelet serving certificates, which are signed only when their "
                   "requests are approved: enable plinth_components.kubelet_csr_approver (or accept "
                   "unverified kubelets with kubelet_insecure_tls: true)")
    if settings["replicas"] > 1:
        common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])


COMPONENT = Component(
    key="metrics_server", title="metrics-server", namespace="metrics-server", project="infra",
    pool="worker", enabled=True, pod_security="restricted",
    options=OPTIONS,
    check=check,
    releases=[Release(RELEASE, 15, {"repo": "https://kubernetes-sigs.github.io/metrics-server",
                                    "name": "metrics-server", "version": "3.13.1"},
                      values=values, manifests=manifests)],
    doc="Resource metrics API for HPA and kubectl top.",
)

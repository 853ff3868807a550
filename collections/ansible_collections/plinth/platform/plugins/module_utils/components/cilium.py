# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cilium: the CNI, installed by Ansible at bootstrap and then adopted by Argo CD.

Both installs read the same values file, so nothing here may depend on Argo CD
or on anything that only exists later (workers, monitoring CRDs):

* The operator registers Cilium's CRDs, and no agent turns Ready before it has
  done so.  At bootstrap only control-plane nodes exist, so the operator (and
  the other Deployments of the chart) may run on the control plane, and prefer
  the operator pool once it has nodes.
* ServiceMonitors stay off in the chart: its ServiceMonitor objects would fail
  the bootstrap install while the Prometheus Operator CRDs are missing.  When
  monitoring is enabled the metrics endpoints are switched on and the
  ServiceMonitors come from the manifest-only release ``cilium-monitoring``,
  synced by Argo CD after the CRDs (see ``MONITORING_WAVE``).
* Hubble certificates are made in the cluster by the chart's certgen Job
  (method ``cronJob``): the ``helm`` method would put a freshly generated CA
  in every render, which Argo CD would see as drift and rotate on every sync.
* Monitored: the agent, the operator, Hubble's flow metrics, Hubble Relay and
  the Envoy DaemonSet, each through its chart's metrics Service.

kube-system gets no NetworkPolicy, not even a default deny.  Cilium's agent,
Envoy and operator, like kubeadm's kube-proxy and control-plane pods, run on
the host network, where NetworkPolicies do not apply.  A deny there would
catch only Hubble Relay and UI, and kubeadm's CoreDNS: Plinth does not deploy
CoreDNS, every namespace's DNS allowance relies on it, and a policy mistake
in the CNI's own namespace would be enforced by the very CNI it cuts off.
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress

from ansible_collections.plinth.platform.plugins.module_utils import placement, schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

# kube-controller-manager's (and Cilium cluster-pool's) default per-node block.
NODE_MASK = 24
# Same wave as kube-prometheus-stack: the CRDs (wave 10) exist by then.
MONITORING_WAVE = 60
MONITOR_API = "monitoring.coreos.com/v1"
HUBBLE_METRICS = ["dns", "drop", "tcp", "flow", "port-distribution", "icmp", "httpV2"]

# The chart's own operator tolerations: the operator must start on nodes that
# are still NotReady (no CNI yet) and on the control plane.
OPERATOR_TOLERATIONS = [
    {"key": placement.CONTROL_PLANE_LABEL, "operator": "Exists"},
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
    {"key": "node.cloudprovider.kubernetes.io/uninitialized", "operator": "Exists"},
]

OPTIONS = {
    "kube_proxy_replacement": s.Bool(True, doc="Cilium's eBPF service handling replaces kube-proxy"),
    "ipam": s.Str("kubernetes", choices=("kubernetes", "cluster-pool"),
                  doc="kubernetes: per-node pod CIDRs from kube-controller-manager (kubeadm podSubnet); "
                      "cluster-pool: Cilium's operator hands out /24 blocks of plinth_pod_cidr"),
    "operator_replicas": s.Int(2, minimum=1),
    "operator_pool": s.Str("worker", nullable=True,
                           doc="pool the operator, Hubble Relay and UI prefer; they may also run on "
                               "the control plane, where they start at bootstrap"),
    "hubble": s.Bool(True, doc="Hubble flow visibility and Hubble Relay"),
    "hubble_ui": s.Bool(False, doc="Hubble UI (needs hubble)"),
    "load_balancer": s.Dict({
        "addresses": s.List(s.Str(), minimum=1,
                            doc="CIDRs (192.0.2.64/28) or ranges (192.0.2.70-192.0.2.79) inside "
                                "plinth_host_network, clear of the hosts and the control-plane endpoint"),
        "interfaces": s.List(s.Str(), default=[],
                             doc="host interfaces (regular expressions) to answer ARP on; all when empty"),
    }, default=None, nullable=True,
        doc="addresses for LoadBalancer Services (Cilium LB IPAM), announced on the hosts' network with "
            "L2 announcements; without it no Service gets an external address"),
}
LB_API = "cilium.io/v2"
L2_API = "cilium.io/v2alpha1"
# Cilium's operator registers these kinds at start: the bootstrap install has made them by
# the time Argo CD adopts the release, but a dry run before that must not fail the sync.
SKIP_DRY_RUN = {"argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"}


def _monitoring(spec):
    return common.enabled(spec, "monitoring")


def _ipam(spec, settings):
    if settings["ipam"] == "kubernetes":
        return {"mode": "kubernetes"}
    return {
        "mode": "cluster-pool",
        "operator": {
            "clusterPoolIPv4PodCIDRList": [spec["pod_cidr"]],
            "clusterPoolIPv4MaskSize": NODE_MASK,
        },
    }


def _bootstrap_affinity(spec, pool_name):
    """Node affinity: the pool or the control plane, preferring the pool.

    Required affinity cannot name the pool alone: at bootstrap the pool has no
    nodes yet and these pods must already run.
    """
    labels = common.node_selector(spec, pool_name)
    if not labels:
        return {}

    def pool_term():
        return {"matchExpressions": [
            {"key": key, "operator": "In", "values": [value]} for key, value in sorted(labels.items())
        ]}

    control_plane_term = {"matchExpressions": [{"key": placement.CONTROL_PLANE_LABEL, "operator": "Exists"}]}
    return {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [pool_term(), control_plane_term],
        },
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": pool_term()}],
    }}


def _bootstrap_tolerations(spec, pool_name, base=None):
    found = list(base if base is not None else [dict(placement.CONTROL_PLANE_TOLERATION)])
    return found + common.tolerations(spec, pool_name)


def _bootstrap_placement(spec, settings):
    """Affinity and tolerations for the chart's Deployments and Jobs besides the agent."""
    pool_name = settings["operator_pool"]
    return {"affinity": _bootstrap_affinity(spec, pool_name),
            "tolerations": _bootstrap_tolerations(spec, pool_name)}


def _operator(spec, settings):
    replicas = settings["operator_replicas"]
    affinity = _bootstrap_affinity(spec, settings["operator_pool"])
    # Listing the anti-affinity keeps one operator per host explicit (the chart's default too).
    affinity["podAntiAffinity"] = common.anti_affinity({"io.cilium/app": "operator"})["podAntiAffinity"]
    operator = {
        "replicas": replicas,
        "rollOutPods": True,
        "affinity": affinity,
        "tolerations": _bootstrap_tolerations(spec, settings["operator_pool"], OPERATOR_TOLERATIONS),
        "podDisruptionBudget": {"enabled": replicas > 1, "maxUnavailable": 1},
        "prometheus": {
            "enabled": True,
            "metricsService": _monitoring(spec),
            "serviceMonitor": {"enabled": False},
        },
    }
    return operator


def _hubble(spec, settings):
    if not settings["hubble"]:
        return {"enabled": False, "relay": {"enabled": False}, "ui": {"enabled": False}}
    hubble = {
        "enabled": True,
        "tls": {"enabled": True, "auto": {"enabled": True, "method": "cronJob"}},
        "relay": dict({"enabled": True, "rollOutPods": True}, **_bootstrap_placement(spec, settings)),
        "ui": dict({"enabled": settings["hubble_ui"], "rollOutPods": True}, **_bootstrap_placement(spec, settings)),
        "metrics": {"enabled": list(HUBBLE_METRICS) if _monitoring(spec) else None,
                    "serviceMonitor": {"enabled": False}},
    }
    if _monitoring(spec):
        hubble["relay"]["prometheus"] = {"enabled": True, "serviceMonitor": {"enabled": False}}
    return hubble


def values(spec, settings):
    endpoint = spec["control_plane_endpoint"]
    monitoring = _monitoring(spec)
    result = {
        "cluster": {"name": spec["cluster_name"]},
        # The API through the kube-vip VIP, not the kubernetes Service: with
        # kube-proxy replaced nothing else would route that ClusterIP at start.
        "k8sServiceHost": endpoint["host"],
        "k8sServicePort": endpoint["port"],
        "kubeProxyReplacement": settings["kube_proxy_replacement"],
        "ipam": _ipam(spec, settings),
        "k8s": {"requireIPv4PodCIDR": settings["ipam"] == "kubernetes"},
        "rollOutCiliumPods": True,
        # Plinth's NetworkPolicies allow the API server by its node addresses (ipBlock);
        # Cilium matches node addresses with CIDR rules only in this mode.
        "policyCIDRMatchMode": ["nodes"],
        # The agent is the node's network: it runs on every node whatever its taints.
        "tolerations": [{"operator": "Exists"}],
        "operator": _operator(spec, settings),
        "hubble": _hubble(spec, settings),
        "prometheus": {
            "enabled": monitoring,
            "metricsService": monitoring,
            "serviceMonitor": {"enabled": False, "trustCRDsExist": False},
        },
    }
    if monitoring:
        # The Envoy DaemonSet's own metrics Service; its monitor comes with cilium-monitoring.
        result["envoy"] = {"prometheus": {"enabled": True, "serviceMonitor": {"enabled": False}}}
    if settings["hubble"]:
        result["certgen"] = _bootstrap_placement(spec, settings)
    if settings["load_balancer"]:
        result["l2announcements"] = {"enabled": True}
    return result


def load_balancer_manifests(spec, settings):
    """The LB IPAM pool and the L2 announcement policy of ``load_balancer`` (none without it)."""
    lb = settings["load_balancer"]
    if not lb:
        return []
    blocks = []
    for text in lb["addresses"]:
        if "-" in text:
            start, stop = [part.strip() for part in text.split("-", 1)]
            blocks.append({"start": start, "stop": stop})
        else:
            blocks.append({"cidr": text})
    pool = {"apiVersion": LB_API, "kind": "CiliumLoadBalancerIPPool",
            "metadata": common.metadata("plinth-default", annotations=SKIP_DRY_RUN),
            "spec": {"blocks": blocks}}
    policy_spec = {
        "loadBalancerIPs": True,
        "externalIPs": False,
        # Control-plane hosts keep the API VIP; Services are announced from the other nodes.
        "nodeSelector": {"matchExpressions": [{"key": placement.CONTROL_PLANE_LABEL, "operator": "DoesNotExist"}]},
    }
    if lb["interfaces"]:
        policy_spec["interfaces"] = list(lb["interfaces"])
    policy = {"apiVersion": L2_API, "kind": "CiliumL2AnnouncementPolicy",
              "metadata": common.metadata("plinth-default", annotations=SKIP_DRY_RUN),
              "spec": policy_spec}
    return [pool, policy]


def address_block(text):
    """``(first, last)`` addresses of a CIDR or an ``a-b`` range; ValueError with the reason otherwise."""
    if "-" in text:
        start, stop = [ipaddress.ip_address(part.strip()) for part in text.split("-", 1)]
        if start.version != stop.version or start > stop:
            raise ValueError("a range runs from a lower to a higher address of one IP family")
        return start, stop
    net = ipaddress.ip_network(text, strict=True)
    return net[0], net[-1]


def _check_load_balancer(spec, settings, errors, path):
    lb = settings["load_balancer"]
    if not lb:
        return
    path += ".load_balancer"
    if not settings["kube_proxy_replacement"]:
        errors.add(path, "addresses", "L2 announcements need plinth_components.cilium.kube_proxy_replacement: true")
    try:
        host_net = ipaddress.ip_network(spec["host_network"]) if spec["host_network"] else None
    except ValueError:
        return  # reported where plinth_host_network is checked
    if host_net is None:
        errors.add(path + ".addresses", lb["addresses"],
                   "L2 announcements answer for these addresses on the hosts' network: set "
                   "plinth_host_network to the hosts' subnet so they can be checked against it")
    taken = {}
    vip = spec["control_plane_endpoint"].get("host")
    for host, info in sorted(spec["hosts"].items()):
        taken[info["address"]] = "the address of host %s" % host
    taken[vip] = "the control-plane endpoint (plinth_control_plane_endpoint.host)"
    for index, text in enumerate(lb["addresses"]):
        where = "%s.addresses[%d]" % (path, index)
        try:
            first, last = address_block(text)
        except ValueError as exc:
            errors.add(where, text, "must be a CIDR with no host bits set or a first-last range (%s)" % exc)
            continue
        if host_net is not None and (first.version != host_net.version
                                     or first not in host_net or last not in host_net):
            errors.add(where, text, "must lie inside plinth_host_network %s" % host_net)
        for address, what in sorted(taken.items(), key=lambda item: str(item[0])):
            try:
                ip = ipaddress.ip_address(address)
            except (TypeError, ValueError):
                continue
            if ip.version == first.version and first <= ip <= last:
                errors.add(where, text, "contains %s (%s); Services would take it over" % (ip, what))


def _service_monitor(name, namespace, selector, port):
    return {
        "apiVersion": MONITOR_API,
        "kind": "ServiceMonitor",
        "metadata": common.metadata(name, namespace, labels={"app.kubernetes.io/part-of": "cilium"}),
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{
                "port": port,
                "path": "/metrics",
                "interval": "30s",
                "honorLabels": True,
                "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"],
                                 "targetLabel": "node", "action": "replace"}],
            }],
        },
    }


def monitoring_manifests(spec, settings):
    """ServiceMonitors for the metrics Services the chart creates (none without monitoring)."""
    if not _monitoring(spec):
        return []
    namespace = settings["namespace"]
    docs = [
        _service_monitor("cilium-agent", namespace, {"app.kubernetes.io/name": "cilium-agent"}, "metrics"),
        _service_monitor("cilium-operator", namespace, {"app.kubernetes.io/name": "cilium-operator"}, "metrics"),
        _service_monitor("cilium-envoy", namespace, {"app.kubernetes.io/name": "cilium-envoy"}, "envoy-metrics"),
    ]
    if settings["hubble"]:
        docs.append(_service_monitor("hubble", namespace, {"k8s-app": "hubble"}, "hubble-metrics"))
        # Relay's API Service carries the same label but no port of that name, so it adds no target.
        docs.append(_service_monitor("hubble-relay", namespace, {"k8s-app": "hubble-relay"}, "metrics"))
    return docs


def _check_pod_cidr(spec, settings, errors):
    try:
        net = ipaddress.ip_network(spec["pod_cidr"])
    except (TypeError, ValueError):
        return  # spec.py reports it
    if net.version != 4:
        errors.add("plinth_pod_cidr", spec["pod_cidr"], "Cilium is configured for an IPv4 pod network only")
        return
    nodes = len(spec["hosts"])
    blocks = 2 ** max(0, NODE_MASK - net.prefixlen) if net.prefixlen <= NODE_MASK else 0
    if blocks < nodes:
        errors.add("plinth_pod_cidr", spec["pod_cidr"],
                   "holds %d per-node /%d pod blocks but the cluster has %d nodes (ipam %s)"
                   % (blocks, NODE_MASK, nodes, settings["ipam"]))


def check(spec, settings, errors, path):
    if settings.get("pool") is not None:
        errors.add(path + ".pool", settings["pool"],
                   "the Cilium agent runs on every node; use operator_pool to place the operator")
    operator_pool = settings["operator_pool"]
    if operator_pool is not None and operator_pool not in spec["node_pools"]:
        errors.add(path + ".operator_pool", operator_pool,
                   "no such node pool (known: %s)" % ", ".join(sorted(spec["node_pools"])))
    else:
        hosts = set(spec["control_plane"]["hosts"])
        if operator_pool is not None:
            hosts |= set(spec["node_pools"][operator_pool]["hosts"])
        replicas = settings["operator_replicas"]
        if replicas > len(hosts):
            errors.add(path + ".operator_replicas", replicas,
                       "%d operator replicas run one per host and need %d control-plane or %r pool hosts "
                       "(there are %d)" % (replicas, replicas, operator_pool, len(hosts)))
    if settings["hubble_ui"] and not settings["hubble"]:
        errors.add(path + ".hubble_ui", True, "needs plinth_components.cilium.hubble: true (the UI reads Hubble Relay)")
    _check_pod_cidr(spec, settings, errors)
    _check_load_balancer(spec, settings, errors, path)


COMPONENT = Component(
    key="cilium", title="Cilium", namespace="kube-system", project="infra", pool=None, enabled=True,
    pod_security="privileged", options=OPTIONS, check=check,
    releases=[
        Release("cilium", 0, {"repo": "https://helm.cilium.io", "name": "cilium", "version": "1.20.0"},
                values=values, manifests=load_balancer_manifests),
        Release("cilium-monitoring", MONITORING_WAVE, None, manifests=monitoring_manifests),
    ],
    doc="CNI on every node; kube-proxy replacement through the control-plane VIP.",
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cilium: API endpoint, IPAM, bootstrap-safe placement, monitoring and cross-checks."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import cilium
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, manifests_of, spec_errors, taint_workers, values_of)

__metaclass__ = type

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


def _values(inventory, **options):
    return values_of(build(inventory, cilium=options), "cilium")


def _required_terms(affinity):
    return affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]


def _preferred(affinity):
    return [p["preference"] for p in affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]]


def _pool_term(labels):
    return {"matchExpressions": [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(labels.items())]}


CONTROL_PLANE_TERM = {"matchExpressions": [{"key": CONTROL_PLANE, "operator": "Exists"}]}


# --- API endpoint and kube-proxy replacement -----------------------------------------

def test_agents_reach_the_api_through_the_control_plane_vip(production):
    values = _values(production)
    assert values["kubeProxyReplacement"] is True
    assert (values["k8sServiceHost"], values["k8sServicePort"]) == ("192.0.2.10", 6443)
    assert values["cluster"]["name"] == "prod"


def test_endpoint_follows_the_inventory(production):
    variables = production[0]
    variables["plinth_control_plane_endpoint"] = {"host": "k8s-api.example.com", "port": 8443}
    values = _values(production)
    assert (values["k8sServiceHost"], values["k8sServicePort"]) == ("k8s-api.example.com", 8443)


def test_kube_proxy_replacement_can_be_turned_off(production):
    assert _values(production, kube_proxy_replacement=False)["kubeProxyReplacement"] is False


# --- IPAM --------------------------------------------------------------------------

def test_ipam_defaults_to_the_node_pod_cidrs_kubeadm_allocates(production):
    values = _values(production)
    assert values["ipam"] == {"mode": "kubernetes"}
    assert values["k8s"]["requireIPv4PodCIDR"] is True


def test_cluster_pool_ipam_hands_out_the_inventory_pod_cidr(production):
    production[0]["plinth_pod_cidr"] = "10.32.0.0/16"
    values = _values(production, ipam="cluster-pool")
    assert values["ipam"]["mode"] == "cluster-pool"
    assert values["ipam"]["operator"]["clusterPoolIPv4PodCIDRList"] == ["10.32.0.0/16"]
    assert values["ipam"]["operator"]["clusterPoolIPv4MaskSize"] == 24
    assert values["k8s"]["requireIPv4PodCIDR"] is False


def test_unknown_ipam_mode_is_rejected(production):
    assert ("plinth_components.cilium.ipam: got 'multi-pool'; must be one of 'kubernetes', 'cluster-pool'"
            in spec_errors(production, cilium={"ipam": "multi-pool"}))


# --- placement -----------------------------------------------------------------------

def test_agent_runs_on_every_node_whatever_its_taints(production):
    assert _values(production)["tolerations"] == [{"operator": "Exists"}]


def test_operator_prefers_workers_but_can_start_on_the_control_plane(production):
    operator = _values(production)["operator"]
    assert operator["replicas"] == 2
    worker = _pool_term({"node.role": "worker"})
    assert _required_terms(operator["affinity"]) == [worker, CONTROL_PLANE_TERM]
    assert _preferred(operator["affinity"]) == [worker]
    anti = operator["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti == [{"labelSelector": {"matchLabels": {"io.cilium/app": "operator"}},
                     "topologyKey": "kubernetes.io/hostname"}]
    keys = [t["key"] for t in operator["tolerations"]]
    # Before the CNI runs every node is NotReady: the operator must start anyway.
    assert CONTROL_PLANE in keys and "node.kubernetes.io/not-ready" in keys
    assert operator["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}


def test_operator_follows_a_tainted_operator_pool(production):
    taint_workers(production, "system", labels={"pool": "system"})
    spec = build(production, consul={"gossip_encryption": "none"}, cilium={"operator_replicas": 3})
    operator = values_of(spec, "cilium")["operator"]
    assert operator["replicas"] == 3
    assert _required_terms(operator["affinity"])[0] == _pool_term({"pool": "system"})
    assert {"key": "dedicated", "operator": "Equal", "value": "system", "effect": "NoSchedule"} \
        in operator["tolerations"]


def test_single_operator_has_no_disruption_budget(production):
    assert _values(production, operator_replicas=1)["operator"]["podDisruptionBudget"]["enabled"] is False


def test_hubble_pods_are_schedulable_at_bootstrap(production):
    values = _values(production)
    for part in (values["hubble"]["relay"], values["hubble"]["ui"], values["certgen"]):
        assert CONTROL_PLANE_TERM in _required_terms(part["affinity"])
        assert {"key": CONTROL_PLANE, "operator": "Exists", "effect": "NoSchedule"} in part["tolerations"]


# --- Hubble ----------------------------------------------------------------------------

def test_hubble_relay_on_ui_off_by_default(production):
    hubble = _values(production)["hubble"]
    assert hubble["enabled"] is True
    assert hubble["relay"]["enabled"] is True
    assert hubble["ui"]["enabled"] is False


def test_hubble_certificates_are_made_in_the_cluster_not_in_the_render(production):
    tls = _values(production)["hubble"]["tls"]
    assert tls["auto"] == {"enabled": True, "method": "cronJob"}


def test_hubble_ui_option(production):
    assert _values(production, hubble_ui=True)["hubble"]["ui"]["enabled"] is True


def test_hubble_off_disables_relay_ui_and_certgen(production):
    values = _values(production, hubble=False)
    assert values["hubble"] == {"enabled": False, "relay": {"enabled": False}, "ui": {"enabled": False}}
    assert "certgen" not in values


# --- monitoring --------------------------------------------------------------------

def test_chart_service_monitors_stay_off_so_bootstrap_needs_no_crds(production):
    values = _values(production)
    assert values["prometheus"]["serviceMonitor"]["enabled"] is False
    assert values["prometheus"]["serviceMonitor"]["trustCRDsExist"] is False
    assert values["operator"]["prometheus"]["serviceMonitor"]["enabled"] is False
    assert values["hubble"]["metrics"]["serviceMonitor"]["enabled"] is False


def test_monitoring_enables_metrics_services_and_separate_service_monitors(production):
    values = _values(production)
    assert values["prometheus"]["enabled"] is True
    assert values["prometheus"]["metricsService"] is True
    assert values["operator"]["prometheus"]["metricsService"] is True
    assert "drop" in values["hubble"]["metrics"]["enabled"]
    monitors = manifests_of(build(production), "cilium")
    assert [(m["kind"], m["metadata"]["name"]) for m in monitors] == [
        ("ServiceMonitor", "cilium-agent"), ("ServiceMonitor", "cilium-operator"),
        ("ServiceMonitor", "cilium-envoy"), ("ServiceMonitor", "hubble"), ("ServiceMonitor", "hubble-relay")]
    for monitor in monitors:
        assert monitor["metadata"]["namespace"] == "kube-system"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["kube-system"]}
    agent = monitors[0]["spec"]
    assert agent["selector"] == {"matchLabels": {"app.kubernetes.io/name": "cilium-agent"}}
    assert agent["endpoints"][0]["port"] == "metrics"


def test_monitoring_release_syncs_after_the_monitoring_crds():
    [chart_release, monitors] = cilium.COMPONENT.releases
    assert chart_release.wave == 0 and chart_release.chart["name"] == "cilium"
    assert monitors.chart is None and monitors.wave > 10


def test_without_monitoring_no_metrics_and_no_service_monitors(production):
    spec = build(production, monitoring={"enabled": False})
    values = values_of(spec, "cilium")
    assert values["prometheus"]["enabled"] is False
    assert values["operator"]["prometheus"]["metricsService"] is False
    assert values["hubble"]["metrics"]["enabled"] is None
    assert manifests_of(spec, "cilium") == []


def test_without_hubble_no_hubble_service_monitor(production):
    monitors = manifests_of(build(production, cilium={"hubble": False}), "cilium")
    assert [m["metadata"]["name"] for m in monitors] == ["cilium-agent", "cilium-operator", "cilium-envoy"]


def test_envoy_and_hubble_relay_serve_metrics_for_their_monitors(production):
    values = _values(production)
    assert values["envoy"] == {"prometheus": {"enabled": True, "serviceMonitor": {"enabled": False}}}
    assert values["hubble"]["relay"]["prometheus"] == {"enabled": True, "serviceMonitor": {"enabled": False}}
    monitors = dict((m["metadata"]["name"], m["spec"]) for m in manifests_of(build(production), "cilium"))
    assert monitors["cilium-envoy"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "cilium-envoy"}}
    assert monitors["cilium-envoy"]["endpoints"][0]["port"] == "envoy-metrics"
    assert monitors["hubble-relay"]["selector"] == {"matchLabels": {"k8s-app": "hubble-relay"}}
    assert monitors["hubble-relay"]["endpoints"][0]["port"] == "metrics"
    values = values_of(build(production, monitoring={"enabled": False}), "cilium")
    assert "envoy" not in values and "prometheus" not in values["hubble"]["relay"]


# --- cross-checks ------------------------------------------------------------------

def test_hubble_ui_needs_hubble(production):
    errors = spec_errors(production, cilium={"hubble": False, "hubble_ui": True})
    assert ("plinth_components.cilium.hubble_ui: got True; needs plinth_components.cilium.hubble: true "
            "(the UI reads Hubble Relay)") in errors


def test_operator_replicas_must_fit_control_plane_and_pool(production):
    errors = spec_errors(production, cilium={"operator_replicas": 7})
    assert ("plinth_components.cilium.operator_replicas: got 7; 7 operator replicas run one per host and "
            "need 7 control-plane or 'worker' pool hosts (there are 6)") in errors


def test_agent_pool_is_rejected(production):
    assert ("plinth_components.cilium.pool: got 'worker'; the Cilium agent runs on every node; "
            "use operator_pool to place the operator") in spec_errors(production, cilium={"pool": "worker"})


def test_unknown_operator_pool_is_rejected(production):
    assert ("plinth_components.cilium.operator_pool: got 'system'; no such node pool "
            "(known: gateway, storage, worker)") in spec_errors(production, cilium={"operator_pool": "system"})


@pytest.mark.parametrize("cidr, blocks", [("10.244.0.0/21", 8), ("10.244.0.0/26", 0)])
def test_pod_cidr_must_hold_a_block_per_node(production, cidr, blocks):
    production[0]["plinth_pod_cidr"] = cidr
    assert ("plinth_pod_cidr: got %r; holds %d per-node /24 pod blocks but the cluster has 12 nodes "
            "(ipam kubernetes)" % (cidr, blocks)) in spec_errors(production)


def test_ipv6_pod_network_is_rejected(production):
    production[0]["plinth_pod_cidr"] = "fd00:10:244::/56"
    assert ("plinth_pod_cidr: got 'fd00:10:244::/56'; Cilium is configured for an IPv4 pod network only"
            in spec_errors(production))


# --- LoadBalancer addresses: LB IPAM with L2 announcements --------------------------------

def _lb(addresses, interfaces=None):
    found = {"addresses": addresses}
    if interfaces is not None:
        found["interfaces"] = interfaces
    return {"load_balancer": found}


def test_no_load_balancer_pool_by_default(production):
    spec = build(production)
    assert manifests_of(spec, "cilium", "cilium") == []
    assert "l2announcements" not in values_of(spec, "cilium")


def test_load_balancer_pool_and_announcement_policy(production):
    spec = build(production, cilium=_lb(["192.0.2.200/29", "192.0.2.220-192.0.2.229"], ["^eth0$"]))
    assert values_of(spec, "cilium")["l2announcements"] == {"enabled": True}
    pool, policy = manifests_of(spec, "cilium", "cilium")
    assert (pool["apiVersion"], pool["kind"]) == ("cilium.io/v2", "CiliumLoadBalancerIPPool")
    assert pool["spec"]["blocks"] == [{"cidr": "192.0.2.200/29"}, {"start": "192.0.2.220", "stop": "192.0.2.229"}]
    assert (policy["apiVersion"], policy["kind"]) == ("cilium.io/v2alpha1", "CiliumL2AnnouncementPolicy")
    assert policy["spec"]["loadBalancerIPs"] is True and policy["spec"]["interfaces"] == ["^eth0$"]
    assert policy["spec"]["nodeSelector"] == {"matchExpressions": [{"key": CONTROL_PLANE, "operator": "DoesNotExist"}]}
    for doc in (pool, policy):
        assert doc["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == \
            "SkipDryRunOnMissingResource=true"


@pytest.mark.parametrize("address, rule", [
    ("192.0.2.8/29", "contains 192.0.2.10 (the control-plane endpoint (plinth_control_plane_endpoint.host)); "
                     "Services would take it over"),
    ("192.0.2.40-192.0.2.50", "contains 192.0.2.41 (the address of host worker-1); Services would take it over"),
    ("198.51.100.0/28", "must lie inside plinth_host_network 192.0.2.0/24"),
    ("192.0.2.250-192.0.2.240", "must be a CIDR with no host bits set or a first-last range "
                                "(a range runs from a lower to a higher address of one IP family)"),
    ("192.0.2.1/24", "must be a CIDR with no host bits set or a first-last range (192.0.2.1/24 has host bits set)"),
])
def test_load_balancer_addresses_are_checked_against_the_host_network(production, address, rule):
    errors = spec_errors(production, cilium=_lb([address]))
    assert errors[0] == "plinth_components.cilium.load_balancer.addresses[0]: got %r; %s" % (address, rule)


def test_load_balancer_needs_the_host_network(production):
    del production[0]["plinth_host_network"]
    assert spec_errors(production, cilium=_lb(["192.0.2.200/29"])) == [
        "plinth_components.cilium.load_balancer.addresses: got ['192.0.2.200/29']; L2 announcements answer "
        "for these addresses on the hosts' network: set plinth_host_network to the hosts' subnet so they "
        "can be checked against it"]


def test_load_balancer_needs_kube_proxy_replacement(production):
    errors = spec_errors(production, cilium=dict(_lb(["192.0.2.200/29"]), kube_proxy_replacement=False))
    assert "L2 announcements need plinth_components.cilium.kube_proxy_replacement: true" in errors[0]

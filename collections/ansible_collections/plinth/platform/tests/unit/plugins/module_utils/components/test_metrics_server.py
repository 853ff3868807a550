# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""metrics-server: two replicas on separate workers, verified kubelet TLS unless told otherwise."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import metrics_server, monitoring
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, manifests_of, names_of, network_policy, spec_errors, values_of)

__metaclass__ = type

SELECTOR = {"app.kubernetes.io/name": "metrics-server", "app.kubernetes.io/instance": "metrics-server"}


@pytest.fixture
def values(production):
    return values_of(build(production), "metrics_server")


def test_production_runs_two_replicas_on_separate_workers(values):
    assert values["replicas"] == 2
    assert values["nodeSelector"] == {"node.role": "worker"}
    assert values["tolerations"] == []
    [term] = values["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"] == SELECTOR
    assert values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}


def test_kubelets_are_reached_by_internal_ip_with_verified_tls(values):
    args = values["defaultArgs"]
    assert "--kubelet-preferred-address-types=InternalIP" in args
    assert "--kubelet-insecure-tls" not in args
    assert not [a for a in args if a.startswith("--kubelet-preferred-address-types=") and "Hostname" in a]


def test_insecure_kubelet_tls_is_an_explicit_choice(production):
    spec = build(production, metrics_server={"kubelet_insecure_tls": True})
    args = values_of(spec, "metrics_server")["defaultArgs"]
    assert "--kubelet-insecure-tls" in args


def test_one_replica_has_no_pdb_and_no_anti_affinity(production):
    values = values_of(build(production, metrics_server={"replicas": 1}), "metrics_server")
    assert values["replicas"] == 1
    assert values["podDisruptionBudget"]["enabled"] is False
    assert values["affinity"] == {}


def test_three_replicas_keep_two_through_a_drain(production):
    values = values_of(build(production, metrics_server={"replicas": 3}), "metrics_server")
    assert values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 2}


def test_follows_a_tainted_worker_pool(production):
    # Edited in the spec: neighbour components reject a tainted worker pool on their own.
    spec = build(production)
    spec["node_pools"]["worker"]["labels"] = {"node.acme.io/tier": "apps"}
    spec["node_pools"]["worker"]["taints"] = [{"key": "node.acme.io/tier", "value": "apps", "effect": "NoSchedule"}]
    values = values_of(spec, "metrics_server")
    assert values["nodeSelector"] == {"node.acme.io/tier": "apps"}
    assert values["tolerations"] == [{"key": "node.acme.io/tier", "operator": "Equal", "value": "apps",
                                      "effect": "NoSchedule"}]


def test_follows_another_pool(production):
    spec = build(production, metrics_server={"pool": "gateway", "replicas": 3})
    values = values_of(spec, "metrics_server")
    assert values["nodeSelector"] == {"node.kong.gateway": "true"}
    assert values["tolerations"] == [{"key": "node.kong.gateway", "operator": "Equal", "value": "true",
                                      "effect": "NoSchedule"}]


def test_scraped_by_prometheus_when_monitoring_is_on(values):
    assert values["serviceMonitor"] == {"enabled": True}
    assert values["metrics"] == {"enabled": True}


def test_no_service_monitor_without_monitoring(production):
    values = values_of(build(production, monitoring={"enabled": False}), "metrics_server")
    assert "serviceMonitor" not in values and "metrics" not in values


def test_syncs_after_the_monitoring_crds():
    crds = [r for r in monitoring.COMPONENT.releases if r.name == "prometheus-operator-crds"][0]
    [release] = metrics_server.COMPONENT.releases
    assert release.wave > crds.wave


def test_replicas_must_fit_the_pool(production):
    errors = spec_errors(production, metrics_server={"replicas": 4})
    assert ("plinth_components.metrics_server.replicas: got 4; 4 replicas need 4 hosts in pool 'worker' "
            "(group workers has 3)") in errors


@pytest.mark.parametrize("option, value, rule", [
    ("replicas", 0, "must be at least 1"),
    ("kubelet_insecure_tls", "yes", "must be true or false"),
])
def test_bad_values_are_named_with_their_rule(production, option, value, rule):
    errors = spec_errors(production, metrics_server={option: value})
    assert "plinth_components.metrics_server.%s: got %r; %s" % (option, value, rule) in errors


# --- NetworkPolicies ---------------------------------------------------------------

def test_namespace_denies_by_default_and_reads_the_api(production):
    docs = manifests_of(build(production), "metrics_server")
    assert names_of(docs, "NetworkPolicy") == ["allow-apiserver", "allow-apiservice", "allow-dns",
                                               "allow-kubelets", "default-deny"]
    assert all(d["metadata"]["namespace"] == "metrics-server" for d in docs)


def test_kubelets_of_every_host_are_reached(production):
    spec = build(production)
    policy = network_policy(manifests_of(spec, "metrics_server"), "allow-kubelets")
    assert policy["podSelector"] == {"matchLabels": SELECTOR}
    [rule] = policy["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 10250}]
    assert sorted(p["ipBlock"]["cidr"] for p in rule["to"]) == sorted(
        "%s/32" % h["address"] for h in spec["hosts"].values())


def test_a_host_known_by_name_opens_the_kubelet_port_everywhere(production):
    production[2]["worker-1"]["ansible_host"] = "worker-1.example.com"
    policy = network_policy(manifests_of(build(production), "metrics_server"), "allow-kubelets")
    assert policy["egress"] == [{"ports": [{"protocol": "TCP", "port": 10250}]}]


def test_the_api_server_and_prometheus_reach_the_secure_port(production):
    policy = network_policy(manifests_of(build(production), "metrics_server"), "allow-apiservice")
    assert policy["podSelector"] == {"matchLabels": SELECTOR}
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 10250}]}]

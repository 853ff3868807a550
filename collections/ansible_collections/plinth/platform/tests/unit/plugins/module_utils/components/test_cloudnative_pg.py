# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""CloudNativePG operator: placement, HA, monitoring and Argo CD settings."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import cloudnative_pg
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, check_errors, find, manifests_of, names_of, network_policy, of_kind, spec_errors, values_of)

__metaclass__ = type

SELECTOR = {"app.kubernetes.io/name": "cloudnative-pg", "app.kubernetes.io/instance": "cloudnative-pg"}


def _render(inventory, **changes):
    spec = build(inventory, cloudnative_pg=changes)
    return values_of(spec, "cloudnative_pg"), manifests_of(spec, "cloudnative_pg")


def test_operator_runs_on_the_worker_pool_spread_over_hosts(production):
    values, _docs = _render(production)
    assert values["replicaCount"] == 2
    assert values["nodeSelector"] == {"node.role": "worker"}
    assert values["tolerations"] == []
    [spread] = values["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["labelSelector"]["matchLabels"] == SELECTOR


def test_operator_watches_all_namespaces_and_owns_its_crds(production):
    values, _docs = _render(production)
    assert values["crds"] == {"create": True}
    assert values["config"]["clusterWide"] is True


def test_operator_follows_its_pool(production):
    production[0]["plinth_node_pools"]["worker"]["labels"] = {"role": "platform"}
    production[0]["plinth_node_pools"]["storage"]["taints"].append(
        {"key": "extra", "value": "", "effect": "PreferNoSchedule"})
    values, _docs = _render(production, pool="storage")
    assert values["nodeSelector"] == {"node.ceph.storage": "true"}
    assert values["tolerations"] == [
        {"key": "node.ceph.storage", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        {"key": "extra", "operator": "Equal", "value": "", "effect": "PreferNoSchedule"},
    ]


def test_pod_disruption_budget_for_the_operator(production):
    _values, docs = _render(production)
    [pdb] = of_kind(docs, "PodDisruptionBudget")
    assert pdb["metadata"]["namespace"] == "cnpg-system"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}


def test_single_replica_has_no_budget(production):
    values, docs = _render(production, replicas=1)
    assert values["replicaCount"] == 1
    assert of_kind(docs, "PodDisruptionBudget") == []


# --- network policies -------------------------------------------------------------

def test_namespace_denies_all_but_what_the_operator_needs(production):
    _values, docs = _render(production)
    assert names_of(docs, "NetworkPolicy") == [
        "allow-apiserver", "allow-dns", "allow-metrics", "allow-to-instances", "allow-webhook", "default-deny"]
    assert all(d["metadata"]["namespace"] == "cnpg-system" for d in of_kind(docs, "NetworkPolicy"))
    assert network_policy(docs, "default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_webhooks_are_open_to_the_host_network_on_their_port_only(production):
    _values, docs = _render(production)
    [rule] = network_policy(docs, "allow-webhook")["ingress"]
    assert "from" not in rule
    assert rule["ports"] == [{"protocol": "TCP", "port": 9443}]


def test_operator_reaches_the_instances_of_kong_s_cluster(production):
    _values, docs = _render(production)
    policy = network_policy(docs, "allow-to-instances")
    assert policy["podSelector"] == {"matchLabels": SELECTOR}
    [rule] = policy["egress"]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kong"}}}]
    assert [p["port"] for p in rule["ports"]] == [8000, 5432]


def test_no_instance_egress_without_an_in_cluster_database(production):
    spec = build(production, kong={"database": {"mode": "external", "host": "192.0.2.50"}})
    assert "allow-to-instances" not in names_of(manifests_of(spec, "cloudnative_pg"), "NetworkPolicy")


def test_prometheus_reaches_the_operator_metrics(production):
    _values, docs = _render(production)
    [rule] = network_policy(docs, "allow-metrics")["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    docs = manifests_of(build(production, monitoring={"enabled": False}), "cloudnative_pg")
    assert "allow-metrics" not in names_of(docs, "NetworkPolicy")


def test_api_server_egress_names_the_control_plane(production):
    _values, docs = _render(production)
    [rule] = network_policy(docs, "allow-apiserver")["egress"]
    assert {"ipBlock": {"cidr": "192.0.2.11/32"}} in rule["to"]
    assert find(docs, "NetworkPolicy", "allow-dns")["spec"]["egress"][0]["ports"][0]["port"] == 53


def test_pod_monitor_only_with_monitoring(production):
    values, _docs = _render(production)
    assert values["monitoring"]["podMonitorEnabled"] is True
    values = values_of(build(production, monitoring={"enabled": False}), "cloudnative_pg")
    assert values["monitoring"]["podMonitorEnabled"] is False


def test_chart_dashboard_only_with_grafana(production):
    values, _docs = _render(production)
    assert values["monitoring"]["grafanaDashboard"] == {
        "create": True, "sidecarLabel": "grafana_dashboard", "sidecarLabelValue": "1"}
    values = values_of(build(production, monitoring={"grafana": {"enabled": False}}), "cloudnative_pg")
    assert values["monitoring"]["grafanaDashboard"] == {"create": False}
    values = values_of(build(production, monitoring={"enabled": False}), "cloudnative_pg")
    assert values["monitoring"]["grafanaDashboard"] == {"create": False}


def test_argo_cd_settings():
    [release] = cloudnative_pg.COMPONENT.releases
    # The Cluster and Pooler CRDs are too large for client-side apply.
    assert release.server_side_apply is True
    kinds = sorted(d["kind"] for d in release.ignore_differences)
    assert kinds == ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
    assert all(d["jqPathExpressions"] == [".webhooks[]?.clientConfig.caBundle"]
               for d in release.ignore_differences)


def test_replicas_must_fit_the_pool(production):
    assert ("plinth_components.cloudnative_pg.replicas: got 4; 4 replicas need 4 hosts in pool 'worker' "
            "(group workers has 3)") in spec_errors(production, cloudnative_pg={"replicas": 4})


def test_disabled_operator_is_not_checked(production):
    spec = build(production, kong={"database": {"mode": "external", "host": "192.0.2.50"}},
                 cloudnative_pg={"enabled": False, "replicas": 9})
    # The replica count is one the check refuses: it was skipped, not passed.
    assert check_errors(spec, "cloudnative_pg") == [
        "plinth_components.cloudnative_pg.replicas: got 9; 9 replicas need 9 hosts in pool 'worker' "
        "(group workers has 3)"]
    assert "cloudnative_pg" not in [component.key for component, _release, _settings in gitops.releases(spec)]

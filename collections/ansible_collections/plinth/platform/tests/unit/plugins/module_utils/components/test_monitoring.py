# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kube-prometheus-stack: HA Prometheus/Alertmanager on Ceph, Grafana from Vault, node-exporter everywhere."""

from __future__ import absolute_import, annotations, division, print_function

import copy

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import monitoring
from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, check_errors, find, manifests_of, names_of, network_policy, of_kind, options, release, spec_errors,
    values_of)

__metaclass__ = type

WORKER = {"node.role": "worker"}
CONTROL_PLANE = {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}
STORAGE = {"key": "node.ceph.storage", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
GATEWAY = {"key": "node.kong.gateway", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
MONITOR_KINDS = ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig")
CRDS, STACK = "prometheus-operator-crds", "kube-prometheus-stack"


def _without_neighbours(inventory, keep=("monitoring", "rook_ceph", "external_secrets")):
    """Switch off the other components, whose own cross-checks are not this test's subject."""
    for key, settings in inventory[0]["plinth_components"].items():
        if key not in keep:
            settings["enabled"] = False
    return inventory


def _stack(spec):
    return values_of(spec, "monitoring", STACK)


@pytest.fixture
def spec(production):
    return build(production)


# --- releases ---------------------------------------------------------------

def test_crds_come_first_and_the_stack_does_not_install_its_own(spec):
    crds, stack = release("monitoring", CRDS), release("monitoring", STACK)
    assert crds.wave == 5 and crds.wave < stack.wave
    assert crds.chart_option == "crds_chart" and crds.chart["name"] == "prometheus-operator-crds"
    assert stack.chart["name"] == "kube-prometheus-stack" and stack.chart["version"].startswith("88.")
    assert crds.server_side_apply and stack.server_side_apply
    assert _stack(spec)["crds"] == {"enabled": False}


def test_crds_survive_pruning_and_deletion_of_the_application(spec):
    values = values_of(spec, "monitoring", CRDS)
    options = values["crds"]["annotations"]["argocd.argoproj.io/sync-options"].split(",")
    assert sorted(options) == ["Delete=false", "Prune=false"]


def test_crds_chart_can_be_overridden(production):
    chart = {"repo": "oci://registry.example.com/charts", "name": "prometheus-operator-crds", "version": "31.0.0"}
    spec = build(production, monitoring={"crds_chart": chart})
    assert spec["components"]["monitoring"]["crds_chart"] == chart


# --- Prometheus and Alertmanager ---------------------------------------------

def test_production_prometheus_is_ha_on_ceph_with_30d_retention(spec):
    prom = _stack(spec)["prometheus"]
    prom_spec = prom["prometheusSpec"]
    assert prom_spec["replicas"] == 2
    assert prom_spec["retention"] == "30d"
    claim = prom_spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "rook-ceph-block"
    assert claim["resources"]["requests"]["storage"] == "50Gi"
    assert claim["accessModes"] == ["ReadWriteOnce"]
    # 85% of 50Gi in Prometheus' power-of-two MB: the WAL keeps head room.
    assert prom_spec["retentionSize"] == "43520MB"
    assert prom_spec["nodeSelector"] == WORKER and prom_spec["tolerations"] == []
    assert prom_spec["podAntiAffinity"] == "hard"
    assert prom_spec["podAntiAffinityTopologyKey"] == "kubernetes.io/hostname"
    assert prom["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}


def test_production_alertmanager_is_ha_on_ceph(spec):
    am = _stack(spec)["alertmanager"]
    am_spec = am["alertmanagerSpec"]
    assert am_spec["replicas"] == 2
    claim = am_spec["storage"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "rook-ceph-block"
    assert claim["resources"]["requests"]["storage"] == "10Gi"
    assert am_spec["nodeSelector"] == WORKER
    assert am_spec["podAntiAffinity"] == "hard"
    assert am["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}


def test_replicas_storage_and_retention_follow_the_inventory(production):
    spec = build(production, monitoring={"prometheus_replicas": 3, "alertmanager_replicas": 3, "retention": "15d",
                                         "prometheus_storage": "100Gi", "alertmanager_storage": "5Gi"})
    values = _stack(spec)
    prom_spec, am_spec = values["prometheus"]["prometheusSpec"], values["alertmanager"]["alertmanagerSpec"]
    assert (prom_spec["replicas"], am_spec["replicas"]) == (3, 3)
    assert prom_spec["retention"] == "15d"
    assert prom_spec["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert prom_spec["retentionSize"] == "87040MB"
    assert am_spec["storage"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert values["prometheus"]["podDisruptionBudget"]["minAvailable"] == 2
    assert values["alertmanager"]["podDisruptionBudget"]["minAvailable"] == 2


def test_single_replicas_get_no_pdb_that_would_block_drains(production):
    values = _stack(build(production, monitoring={"prometheus_replicas": 1, "alertmanager_replicas": 1}))
    assert values["prometheus"]["podDisruptionBudget"]["enabled"] is False
    assert values["alertmanager"]["podDisruptionBudget"]["enabled"] is False


def test_staging_runs_single_replicas_without_pdbs():
    values = _stack(build(load_inventory("staging")))
    prom, am = values["prometheus"], values["alertmanager"]
    assert prom["prometheusSpec"]["replicas"] == 1 and am["alertmanagerSpec"]["replicas"] == 1
    assert prom["prometheusSpec"]["retention"] == "7d"
    assert prom["prometheusSpec"]["retentionSize"] == "17408MB"
    assert not prom["podDisruptionBudget"]["enabled"] and not am["podDisruptionBudget"]["enabled"]


@pytest.mark.parametrize("quantity, expected", [
    ("50Gi", "43520MB"),
    ("1Ti", "891289MB"),
    ("100G", "81062MB"),
    ("0", None),
    ("nonsense", None),
])
def test_retention_size_leaves_room_on_the_volume(quantity, expected):
    assert monitoring.retention_size(quantity) == expected


def test_monitors_and_rules_of_every_release_and_namespace_are_selected(spec):
    prom_spec = _stack(spec)["prometheus"]["prometheusSpec"]
    for kind in MONITOR_KINDS:
        assert prom_spec[kind + "SelectorNilUsesHelmValues"] is False, kind
        assert prom_spec[kind + "Selector"] == {}, kind
        assert prom_spec[kind + "NamespaceSelector"] == {}, kind


def test_prometheus_labels_its_series_with_the_cluster(spec):
    assert _stack(spec)["prometheus"]["prometheusSpec"]["externalLabels"] == {"cluster": "prod"}


# --- storage class -------------------------------------------------------------

def _claims(values):
    yield values["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]["spec"]
    yield values["alertmanager"]["alertmanagerSpec"]["storage"]["volumeClaimTemplate"]["spec"]


def test_without_rook_the_cluster_default_storage_class_is_used(production):
    # Logging, a neighbour, refuses to run without a storage class; it is not this test's subject.
    values = _stack(build(production, rook_ceph={"enabled": False}, logging={"enabled": False}))
    for claim in _claims(values):
        assert "storageClassName" not in claim
    assert "storageClassName" not in values["grafana"]["persistence"]


def test_storage_class_follows_rook_ceph(production):
    values = _stack(build(production, rook_ceph={"storage_class": "ceph-fast"}))
    assert [c["storageClassName"] for c in _claims(values)] == ["ceph-fast", "ceph-fast"]


def test_explicit_storage_class_wins(production):
    values = _stack(build(production, monitoring={"storage_class": "local-nvme"}))
    assert [c["storageClassName"] for c in _claims(values)] == ["local-nvme", "local-nvme"]
    assert values["grafana"]["persistence"]["storageClassName"] == "local-nvme"


# --- placement -----------------------------------------------------------------

def _tainted_workers(spec):
    """The worker pool relabelled and tainted; edited in the spec, as neighbours reject tainted workers."""
    spec = copy.deepcopy(spec)
    spec["node_pools"]["worker"]["labels"] = {"node.acme.io/tier": "apps"}
    spec["node_pools"]["worker"]["taints"] = [{"key": "node.acme.io/tier", "value": "apps", "effect": "NoExecute"}]
    return spec


def test_every_monitoring_workload_follows_the_worker_pool(spec):
    values = _stack(_tainted_workers(spec))
    toleration = [{"key": "node.acme.io/tier", "operator": "Equal", "value": "apps", "effect": "NoExecute"}]
    placed = [
        values["prometheus"]["prometheusSpec"],
        values["alertmanager"]["alertmanagerSpec"],
        values["grafana"],
        values["prometheusOperator"],
        values["prometheusOperator"]["admissionWebhooks"]["patch"],
        values["kube-state-metrics"],
    ]
    for where in placed:
        assert where["nodeSelector"] == {"node.acme.io/tier": "apps"}
        assert where["tolerations"] == toleration


def test_the_pool_is_an_inventory_choice(production):
    values = _stack(build(production, monitoring={"pool": "gateway"}))
    for where in (values["prometheus"]["prometheusSpec"], values["alertmanager"]["alertmanagerSpec"],
                  values["grafana"], values["kube-state-metrics"]):
        assert where["nodeSelector"] == {"node.kong.gateway": "true"}
        assert where["tolerations"] == [GATEWAY]


def test_node_exporter_tolerates_every_pool_and_the_control_plane(spec):
    tolerations = _stack(spec)["prometheus-node-exporter"]["tolerations"]
    assert STORAGE in tolerations and GATEWAY in tolerations and CONTROL_PLANE in tolerations
    assert "nodeSelector" not in _stack(spec)["prometheus-node-exporter"]


def test_node_exporter_tolerates_new_pool_taints(spec):
    tolerations = _stack(_tainted_workers(spec))["prometheus-node-exporter"]["tolerations"]
    assert {"key": "node.acme.io/tier", "operator": "Equal", "value": "apps", "effect": "NoExecute"} in tolerations
    assert len(tolerations) == len(set(yaml.safe_dump(t) for t in tolerations)) == 4


# --- Grafana -------------------------------------------------------------------

def test_grafana_admin_comes_from_vault_through_an_external_secret(spec):
    grafana = _stack(spec)["grafana"]
    assert grafana["admin"] == {"existingSecret": "grafana-admin", "userKey": "admin-user",
                                "passwordKey": "admin-password"}
    secret = find(manifests_of(spec, "monitoring"), "ExternalSecret", "grafana-admin")
    assert secret["metadata"]["namespace"] == "monitoring"
    assert secret["spec"]["target"]["name"] == "grafana-admin"
    assert secret["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "vault"}
    remote = {"key": "platform/monitoring/grafana", "property": "admin-password"}
    assert secret["spec"]["data"] == [{"secretKey": "admin-password", "remoteRef": remote}]
    template = secret["spec"]["target"]["template"]
    assert template["mergePolicy"] == "Merge" and template["data"] == {"admin-user": "admin"}


def test_no_password_value_reaches_values_or_manifests(spec):
    text = yaml.safe_dump(_stack(spec)) + yaml.safe_dump_all(manifests_of(spec, "monitoring"))
    assert "adminPassword" not in text
    grafana = _stack(spec)["grafana"]
    assert set(grafana["admin"]) == set(["existingSecret", "userKey", "passwordKey"])


def test_grafana_vault_path_and_user_are_options(production):
    spec = build(production, monitoring={"grafana": {"vault_path": "kv/ops/grafana", "admin_user": "ops"}})
    secret = find(manifests_of(spec, "monitoring"), "ExternalSecret", "grafana-admin")
    assert secret["spec"]["data"][0]["remoteRef"]["key"] == "kv/ops/grafana"
    assert secret["spec"]["target"]["template"]["data"] == {"admin-user": "ops"}


def test_grafana_loads_default_and_other_components_dashboards(spec):
    grafana = _stack(spec)["grafana"]
    assert grafana["defaultDashboardsEnabled"] is True
    dashboards = grafana["sidecar"]["dashboards"]
    assert dashboards["enabled"] is True and dashboards["searchNamespace"] == "ALL"
    assert dashboards["label"] == "grafana_dashboard"


def test_grafana_keeps_its_database_on_a_recreated_ceph_volume(spec):
    grafana = _stack(spec)["grafana"]
    assert grafana["persistence"]["enabled"] is True
    assert grafana["persistence"]["size"] == "10Gi"
    assert grafana["persistence"]["storageClassName"] == "rook-ceph-block"
    assert grafana["deploymentStrategy"] == {"type": "Recreate"}


def test_grafana_without_storage_has_no_pvc(production):
    grafana = _stack(build(production, monitoring={"grafana": {"storage": None}}))["grafana"]
    assert "persistence" not in grafana and "deploymentStrategy" not in grafana


def test_grafana_disabled_means_no_external_secret(production):
    options(production, "monitoring").pop("alertmanager", None)  # receivers bring ExternalSecrets of their own
    spec = build(production, monitoring={"grafana": {"enabled": False}})
    assert _stack(spec)["grafana"] == {"enabled": False}
    docs = manifests_of(spec, "monitoring")
    assert not of_kind(docs, "ExternalSecret") and not of_kind(docs, "ConfigMap")
    assert "allow-grafana" not in names_of(docs, "NetworkPolicy")


# --- kubeadm control plane -------------------------------------------------------

def test_control_plane_targets_are_scraped_by_default(production):
    values = _stack(build(production))
    for key in ("kubeControllerManager", "kubeScheduler", "kubeEtcd"):
        assert values[key]["enabled"] is True, key


def test_control_plane_targets_are_off_when_asked(production):
    values = _stack(build(production, monitoring={"control_plane_metrics": False}))
    for key in ("kubeControllerManager", "kubeScheduler", "kubeEtcd", "kubeProxy"):
        assert values[key] == {"enabled": False}, key


def test_control_plane_targets_scrape_the_control_plane_hosts(production):
    values = _stack(build(production))
    for key in ("kubeControllerManager", "kubeScheduler", "kubeEtcd"):
        assert values[key] == {"enabled": True, "endpoints": ["192.0.2.11", "192.0.2.12", "192.0.2.13"]}, key


def test_kube_proxy_is_scraped_only_when_cilium_leaves_it_in_place(production):
    spec = build(production, monitoring={"control_plane_metrics": True})
    spec = copy.deepcopy(spec)
    spec["components"]["cilium"]["kube_proxy_replacement"] = True
    assert _stack(spec)["kubeProxy"] == {"enabled": False}
    spec["components"]["cilium"]["kube_proxy_replacement"] = False
    assert _stack(spec)["kubeProxy"] == {"enabled": True}


def test_control_plane_named_by_dns_falls_back_to_the_pod_selector(production):
    production[2]["cp-2"]["ansible_host"] = "cp-2.example.com"
    values = _stack(build(production, monitoring={"control_plane_metrics": True}))
    assert values["kubeEtcd"] == {"enabled": True}


# --- rules, dashboards, node-exporter's textfile collector -------------------------

def test_chart_rules_and_plinth_rules_are_both_rendered(spec):
    assert _stack(spec)["defaultRules"] == {"create": True}
    rule = find(manifests_of(spec, "monitoring"), "PrometheusRule", "plinth-alerts")
    assert rule["metadata"]["namespace"] == "monitoring" and rule["spec"]["groups"]


def test_alerts_can_be_switched_off(production):
    spec = build(production, monitoring={"alerts": {"enabled": False}})
    assert not of_kind(manifests_of(spec, "monitoring"), "PrometheusRule")


def test_overview_dashboard_is_a_configmap_the_sidecar_loads(spec):
    dashboard = find(manifests_of(spec, "monitoring"), "ConfigMap", "plinth-platform-overview")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert list(dashboard["data"]) == ["plinth-platform-overview.json"]


def test_node_exporter_reads_the_textfile_directory_read_only(spec):
    exporter = _stack(spec)["prometheus-node-exporter"]
    assert "--collector.textfile.directory=/var/lib/node_exporter/textfile" in exporter["extraArgs"]
    # The chart's own filesystem filters survive the list being replaced.
    assert any(a.startswith("--collector.filesystem.mount-points-exclude=") for a in exporter["extraArgs"])
    assert exporter["extraHostVolumeMounts"] == [{
        "name": "textfile", "hostPath": "/var/lib/node_exporter/textfile",
        "mountPath": "/var/lib/node_exporter/textfile", "type": "DirectoryOrCreate", "readOnly": True}]


# --- Alertmanager receivers ------------------------------------------------------------

RECEIVERS = [
    {"name": "ops-slack", "type": "slack", "vault_path": "platform/monitoring/slack", "channel": "#ops"},
    {"name": "oncall", "type": "pagerduty", "vault_path": "platform/monitoring/pagerduty",
     "severities": ["critical"]},
    {"name": "hook", "type": "webhook", "vault_path": "platform/monitoring/hook", "vault_property": "endpoint"},
    {"name": "mail", "type": "email", "vault_path": "platform/monitoring/smtp", "to": "ops@example.com",
     "from": "alerts@example.com", "smarthost": "smtp.example.com:587", "auth_username": "alerts"},
]


@pytest.fixture
def with_receivers(production):
    return build(production, monitoring={"alertmanager": {"receivers": copy.deepcopy(RECEIVERS)}})


def test_no_receivers_keeps_the_charts_alertmanager_configuration(production):
    options(production, "monitoring").pop("alertmanager", None)
    spec = build(production)
    am = _stack(spec)["alertmanager"]
    assert "config" not in am and "secrets" not in am["alertmanagerSpec"]
    assert "allow-alertmanager-receivers" not in names_of(manifests_of(spec, "monitoring"), "NetworkPolicy")


def test_each_receiver_reads_its_credential_from_a_mounted_file(with_receivers):
    am = _stack(with_receivers)["alertmanager"]
    assert am["alertmanagerSpec"]["secrets"] == [
        "alertmanager-receiver-ops-slack", "alertmanager-receiver-oncall",
        "alertmanager-receiver-hook", "alertmanager-receiver-mail"]
    receivers = dict((r["name"], r) for r in am["config"]["receivers"])
    base = "/etc/alertmanager/secrets/alertmanager-receiver-"
    assert receivers["null"] == {"name": "null"}
    assert receivers["ops-slack"]["slack_configs"] == [
        {"api_url_file": base + "ops-slack/api-url", "send_resolved": True, "channel": "#ops"}]
    assert receivers["oncall"]["pagerduty_configs"] == [
        {"routing_key_file": base + "oncall/routing-key", "send_resolved": True}]
    assert receivers["hook"]["webhook_configs"] == [{"url_file": base + "hook/url", "send_resolved": True}]
    [mail] = receivers["mail"]["email_configs"]
    assert mail["auth_password_file"] == base + "mail/password"
    assert (mail["to"], mail["from"], mail["smarthost"], mail["auth_username"]) == (
        "ops@example.com", "alerts@example.com", "smtp.example.com:587", "alerts")


def test_route_sends_watchdog_nowhere_and_each_receiver_its_severities(with_receivers):
    route = _stack(with_receivers)["alertmanager"]["config"]["route"]
    assert route["receiver"] == "null" and route["repeat_interval"] == "4h"
    assert route["routes"][0] == {"receiver": "null", "matchers": ['alertname =~ "Watchdog|InfoInhibitor"']}
    assert route["routes"][1] == {"receiver": "ops-slack", "continue": True}
    assert route["routes"][2] == {"receiver": "oncall", "continue": True, "matchers": ['severity =~ "critical"']}


def test_receiver_credentials_come_from_vault(with_receivers):
    docs = manifests_of(with_receivers, "monitoring")
    hook = find(docs, "ExternalSecret", "alertmanager-receiver-hook")
    assert hook["spec"]["data"] == [
        {"secretKey": "url", "remoteRef": {"key": "platform/monitoring/hook", "property": "endpoint"}}]
    slack = find(docs, "ExternalSecret", "alertmanager-receiver-ops-slack")
    assert slack["spec"]["data"][0]["remoteRef"] == {"key": "platform/monitoring/slack", "property": "api-url"}
    text = yaml.safe_dump(_stack(with_receivers))
    assert "hooks.slack.com" not in text and "api_url:" not in text and "routing_key:" not in text


def test_alertmanager_may_reach_receivers_on_https_and_the_smtp_port(with_receivers):
    policy = network_policy(manifests_of(with_receivers, "monitoring"), "allow-alertmanager-receivers")
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}}
    assert policy["egress"][0]["ports"] == [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 587}]


@pytest.mark.parametrize("receiver, field, value, rule", [
    ({"name": "mail", "type": "email", "vault_path": "p"}, "to", None, "required for an email receiver"),
    ({"name": "s", "type": "slack", "vault_path": "p", "to": "x@example.com"}, "to", "x@example.com",
     "only applies to email receivers, not slack"),
    ({"name": "p", "type": "pagerduty", "vault_path": "p", "channel": "#ops"}, "channel", "#ops",
     "only applies to slack receivers, not pagerduty"),
    ({"name": "null", "type": "webhook", "vault_path": "p"}, "name", "null",
     "must be unique and not 'null' (the route's own receiver for alerts nobody takes)"),
])
def test_receivers_are_checked_by_type(production, receiver, field, value, rule):
    errors = spec_errors(production, monitoring={"alertmanager": {"receivers": [receiver]}})
    assert "plinth_components.monitoring.alertmanager.receivers[0].%s: got %r; %s" % (field, value, rule) in errors


def test_receiver_type_and_smarthost_are_checked(production):
    receivers = [{"name": "x", "type": "teams", "vault_path": "p"},
                 {"name": "m", "type": "email", "vault_path": "p", "to": "a@example.com", "from": "b@example.com",
                  "smarthost": "smtp.example.com", "auth_username": "u"}]
    errors = spec_errors(production, monitoring={"alertmanager": {"receivers": receivers}})
    assert ("plinth_components.monitoring.alertmanager.receivers[0].type: got 'teams'; must be one of "
            "'email', 'pagerduty', 'slack', 'webhook'") in errors
    assert ("plinth_components.monitoring.alertmanager.receivers[1].smarthost: got 'smtp.example.com'; "
            "must be host:port of the SMTP server, like smtp.example.com:587") in errors


def test_receivers_need_external_secrets(production):
    errors = spec_errors(production, external_secrets={"enabled": False},
                         monitoring={"alertmanager": {"receivers": [RECEIVERS[1]]}})
    assert ("plinth_components.monitoring.alertmanager.receivers: got '1 receivers'; each receiver's credential "
            "comes from Vault through an ExternalSecret: needs plinth_components.external_secrets.enabled: "
            "true") in errors


# --- NetworkPolicies --------------------------------------------------------------------

def test_namespace_denies_by_default_and_resolves_names(spec):
    docs = manifests_of(spec, "monitoring")
    assert network_policy(docs, "default-deny")["policyTypes"] == ["Ingress", "Egress"]
    assert network_policy(docs, "allow-dns")["egress"]


def test_prometheus_reaches_every_namespace_and_every_host(spec):
    policy = network_policy(manifests_of(spec, "monitoring"), "allow-prometheus-egress")
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}
    namespaces, hosts = policy["egress"]
    assert namespaces == {"to": [{"namespaceSelector": {}}]}
    cidrs = [peer["ipBlock"]["cidr"] for peer in hosts["to"]]
    assert "192.0.2.11/32" in cidrs and all(c.endswith("/32") or c.endswith("/128") for c in cidrs)
    assert "ports" not in hosts


def test_prometheus_scrapes_every_workload_of_the_namespace(spec):
    policy = network_policy(manifests_of(spec, "monitoring"), "allow-scrape")
    assert policy["podSelector"] == {}
    assert policy["ingress"] == [{"from": [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]}]


def test_grafana_is_reachable_in_cluster_and_reads_prometheus_and_alertmanager(spec):
    policy = network_policy(manifests_of(spec, "monitoring"), "allow-grafana")
    assert policy["ingress"] == [{"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 3000}]}]
    assert [rule["ports"][0]["port"] for rule in policy["egress"]] == [9090, 9093]


def test_alertmanager_replicas_gossip_with_each_other(spec):
    policy = network_policy(manifests_of(spec, "monitoring"), "allow-alertmanager")
    mesh = [{"protocol": "TCP", "port": 9094}, {"protocol": "UDP", "port": 9094}]
    assert policy["ingress"][1]["ports"] == mesh and policy["egress"][0]["ports"] == mesh


def test_operator_webhook_takes_calls_from_the_control_plane_hosts(spec):
    policy = network_policy(manifests_of(spec, "monitoring"), "allow-operator-webhook")
    assert policy["podSelector"] == {"matchLabels": {"app": "kube-prometheus-stack-operator"}}
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 10250}]
    assert {"ipBlock": {"cidr": "192.0.2.11/32"}} in rule["from"]


def test_operator_webhook_is_open_on_its_port_when_a_host_has_a_dns_name(production):
    production[2]["cp-2"]["ansible_host"] = "cp-2.example.com"
    policy = network_policy(manifests_of(build(production), "monitoring"), "allow-operator-webhook")
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 10250}]}]


def test_api_clients_of_the_namespace_may_reach_the_api_server(spec):
    names = names_of(manifests_of(spec, "monitoring"), "NetworkPolicy")
    for workload in ("prometheus", "grafana", "operator", "kube-state-metrics", "admission-create",
                     "admission-patch"):
        assert "allow-apiserver-" + workload in names


# --- validation ------------------------------------------------------------------

def test_replicas_must_fit_the_worker_pool(production):
    errors = spec_errors(production, monitoring={"prometheus_replicas": 4, "alertmanager_replicas": 5})
    assert ("plinth_components.monitoring.prometheus_replicas: got 4; 4 Prometheus replicas need 4 hosts "
            "in pool 'worker' (group workers has 3)") in errors
    assert ("plinth_components.monitoring.alertmanager_replicas: got 5; 5 Alertmanager replicas need 5 hosts "
            "in pool 'worker' (group workers has 3)") in errors


def test_grafana_needs_external_secrets(production):
    errors = spec_errors(production, external_secrets={"enabled": False})
    assert ("plinth_components.monitoring.grafana.enabled: got True; the Grafana admin password comes from "
            "Vault through an ExternalSecret: needs plinth_components.external_secrets.enabled: true") in errors


def test_no_grafana_no_need_for_external_secrets(production):
    _without_neighbours(production, keep=("monitoring", "rook_ceph"))
    production[0]["plinth_apps"] = []
    options(production, "monitoring").pop("alertmanager", None)  # receivers read Vault through ExternalSecrets
    spec = build(production, monitoring={"grafana": {"enabled": False}})
    assert spec["components"]["external_secrets"]["enabled"] is False
    assert _stack(spec)["grafana"]["enabled"] is False
    assert not of_kind(manifests_of(spec, "monitoring"), "ExternalSecret")


@pytest.mark.parametrize("option, value, rule", [
    ("retention", "30 days", "must be a positive duration like 30d, 12h or 1h30m"),
    ("retention", "0d", "must be a positive duration like 30d, 12h or 1h30m"),
    ("prometheus_storage", "50GB", "must be a Kubernetes quantity like 500m, 2, 128Mi or 50Gi"),
    ("alertmanager_storage", "lots", "must be a Kubernetes quantity like 500m, 2, 128Mi or 50Gi"),
    ("prometheus_replicas", 0, "must be at least 1"),
    ("storage_class", "Ceph_Block", "must be a DNS subdomain (lowercase letters, digits, '-' and '.')"),
])
def test_bad_values_are_named_with_their_rule(production, option, value, rule):
    errors = spec_errors(production, monitoring={option: value})
    assert "plinth_components.monitoring.%s: got %r; %s" % (option, value, rule) in errors


def test_disabled_monitoring_skips_its_checks(production):
    spec = build(production, monitoring={"enabled": False, "prometheus_replicas": 9})
    # The replica count is one the check refuses: it was skipped, not passed.
    assert check_errors(spec, "monitoring") == [
        "plinth_components.monitoring.prometheus_replicas: got 9; 9 Prometheus replicas need 9 hosts in pool "
        "'worker' (group workers has 3)"]
    assert "monitoring" not in [component.key for component, _release, _settings in gitops.releases(spec)]

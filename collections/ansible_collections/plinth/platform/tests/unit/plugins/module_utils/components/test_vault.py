# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Vault: HA servers on the worker pool whose storage is the Consul server Service."""

from __future__ import absolute_import, annotations, division, print_function

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import schema
from ansible_collections.plinth.platform.plugins.module_utils.components import consul, registry, vault
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

__metaclass__ = type

SERVER = {"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "vault", "component": "server"}
DEDICATED = {"key": "dedicated", "value": "platform", "effect": "NoSchedule"}


def _declared_only(variables):
    """Drop keys a neighbour component does not declare yet: this test is about Vault."""
    for component in registry():
        declared = set(["enabled", "pool", "namespace"]) | set(component.options) | set(
            r.chart_option for r in component.releases if r.chart)
        settings = variables["plinth_components"].get(component.key)
        if settings is not None:
            variables["plinth_components"][component.key] = dict(
                (k, v) for k, v in settings.items() if k in declared)
    return variables


def _build(inventory, consul_options=None, **options):
    variables, groups, hostvars = inventory
    _declared_only(variables)
    variables["plinth_components"].setdefault("consul", {}).update(consul_options or {})
    variables["plinth_components"].setdefault("vault", {}).update(options)
    return build_spec(variables, groups, hostvars)


def _values(spec):
    [release] = vault.COMPONENT.releases
    return release.values(spec, spec["components"]["vault"])


def _manifests(spec):
    [release] = vault.COMPONENT.releases
    return release.manifests(spec, spec["components"]["vault"])


def _policy(docs, name):
    [found] = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == name]
    return found["spec"]


def _errors(inventory, **options):
    with pytest.raises(schema.SpecError) as caught:
        _build(inventory, **options)
    return caught.value.errors


def _check(spec):
    errors = schema.Errors()
    vault.COMPONENT.check(spec, spec["components"]["vault"], errors, "plinth_components.vault")
    return errors.items


@pytest.fixture
def values(production):
    return _values(_build(production))


def test_production_runs_three_ha_servers_without_raft(values):
    ha = values["server"]["ha"]
    assert ha["enabled"] is True
    assert ha["replicas"] == 3
    assert ha["raft"] == {"enabled": False}
    # Data lives in Consul, not on a per-pod volume.
    assert values["server"]["dataStorage"] == {"enabled": False}


def test_storage_is_the_consul_server_service_by_dns_name(values):
    config = values["server"]["ha"]["config"]
    assert 'storage "consul" {' in config
    assert 'address = "consul-server.consul.svc:8500"' in config
    assert 'path = "vault/"' in config
    assert "HOST_IP" not in config
    assert 'storage "raft"' not in config


def test_storage_address_follows_consul_namespace(production):
    config = _values(_build(production, consul_options={"namespace": "kv"}))["server"]["ha"]["config"]
    assert 'address = "consul-server.kv.svc:8500"' in config


def test_config_never_contains_the_chart_substitution_tokens(values):
    # The chart's start script rewrites these words with sed.
    config = values["server"]["ha"]["config"]
    for token in ("HOST_IP", "POD_IP", "HOSTNAME", "API_ADDR", "TRANSIT_ADDR", "RAFT_ADDR"):
        assert token not in config


def test_servers_are_placed_on_the_worker_pool(values):
    assert values["server"]["nodeSelector"] == {"node.role": "worker"}
    assert values["server"]["tolerations"] == []


def test_tainted_pool_gets_tolerations(production):
    production[0]["plinth_node_pools"]["worker"]["taints"] = [dict(DEDICATED)]
    production[0]["plinth_components"].setdefault("consul", {})["gossip_encryption"] = "none"
    values = _values(_build(production))
    assert values["server"]["tolerations"] == [dict(DEDICATED, operator="Equal")]


def test_disruption_budget_keeps_a_majority(values):
    assert values["server"]["ha"]["disruptionBudget"] == {"enabled": True, "maxUnavailable": 1}


def test_single_server_has_no_disruption_budget(production):
    values = _values(_build(production, replicas=1))
    assert values["server"]["ha"]["replicas"] == 1
    assert values["server"]["ha"]["disruptionBudget"]["enabled"] is False


def test_pods_meet_the_restricted_pod_security_level(values):
    security = values["server"]["statefulSet"]["securityContext"]
    assert security["pod"]["runAsNonRoot"] is True
    assert security["pod"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["container"]["allowPrivilegeEscalation"] is False
    assert security["container"]["capabilities"] == {"drop": ["ALL"]}
    # IPC_LOCK cannot be granted under the restricted level.
    assert "disable_mlock = true" in values["server"]["ha"]["config"]


def test_injector_and_csi_are_off_by_default(values):
    assert values["injector"] == {"enabled": False}
    assert values["csi"] == {"enabled": False}


def test_plain_http_by_default(values):
    assert values["global"]["tlsDisable"] is True
    assert "tls_disable = 1" in values["server"]["ha"]["config"]


def test_ui_is_on_by_default_and_can_be_turned_off(production, values):
    assert values["ui"]["enabled"] is True
    assert "ui = true" in values["server"]["ha"]["config"]
    off = _values(_build(production, ui=False))
    assert off["ui"]["enabled"] is False
    assert "ui = false" in off["server"]["ha"]["config"]


def test_metrics_with_monitoring(values):
    assert values["serverTelemetry"]["serviceMonitor"]["enabled"] is True
    config = values["server"]["ha"]["config"]
    assert 'unauthenticated_metrics_access = "true"' in config
    assert 'prometheus_retention_time = "30s"' in config


def test_no_metrics_without_monitoring(production):
    spec = _build(production)
    spec["components"]["monitoring"]["enabled"] = False
    values = _values(spec)
    assert "serverTelemetry" not in values
    assert "telemetry" not in values["server"]["ha"]["config"]


def test_tls_from_an_operator_made_secret(production):
    spec = _build(production, tls_secret_name="vault-server-tls")
    values = _values(spec)
    assert values["global"]["tlsDisable"] is False
    config = values["server"]["ha"]["config"]
    assert 'tls_cert_file = "/vault/userconfig/tls/tls.crt"' in config
    assert "tls_disable" not in config
    assert values["server"]["volumes"] == [{"name": "tls", "secret": {"secretName": "vault-server-tls"}}]
    assert values["server"]["volumeMounts"][0]["mountPath"] == "/vault/userconfig/tls"
    assert vault.address(spec) == "https://vault.vault.svc:8200"


def test_address_is_the_vault_service(production):
    assert vault.address(_build(production)) == "http://vault.vault.svc:8200"


def test_consul_token_comes_from_a_secret_when_consul_has_acls(production):
    values = _values(_build(production, consul_options={"acls": True}, consul_token_secret_name="vault-kv-token"))
    assert values["server"]["extraSecretEnvironmentVars"] == [
        {"envName": "CONSUL_HTTP_TOKEN", "secretName": "vault-kv-token", "secretKey": "token"}]
    assert "token" not in values["server"]["ha"]["config"]


def test_no_consul_token_without_acls(values):
    assert "extraSecretEnvironmentVars" not in values["server"]


def test_other_backends_are_rejected(production):
    assert _errors(production, backend="raft") == [
        "plinth_components.vault.backend: got 'raft'; only 'consul' is supported: Vault stores its data "
        "in the in-cluster Consul (raft is not offered)"]


def test_consul_must_be_enabled(production):
    spec = _build(production)
    spec["components"]["consul"]["enabled"] = False
    assert _check(spec) == [
        "plinth_components.vault.backend: got 'consul'; needs plinth_components.consul.enabled: true "
        "(Vault stores its data in the in-cluster Consul)"]


def test_more_servers_than_workers_is_rejected(production):
    assert _errors(production, replicas=4) == [
        "plinth_components.vault.replicas: got 4; 4 Vault servers need 4 hosts in pool 'worker' "
        "(group workers has 3)"]


def test_injector_when_asked(production):
    production[0]["plinth_node_pools"]["worker"]["taints"] = [dict(DEDICATED)]
    production[0]["plinth_components"].setdefault("consul", {})["gossip_encryption"] = "none"
    spec = _build(production, injector=True)
    injector = _values(spec)["injector"]
    assert injector["enabled"] is True
    assert injector["replicas"] == 2
    assert injector["nodeSelector"] == {"node.role": "worker"}
    assert injector["tolerations"] == [dict(DEDICATED, operator="Equal")]
    assert injector["securityContext"]["pod"]["seccompProfile"] == {"type": "RuntimeDefault"}
    docs = _manifests(spec)
    assert _policy(docs, "allow-injector-webhook")["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    # Injected agents run in any namespace.
    assert _policy(docs, "allow-api-clients")["ingress"][0]["from"] == [{"namespaceSelector": {}}]


def test_network_policies_deny_by_default(production):
    docs = _manifests(_build(production))
    assert _policy(docs, "default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert _policy(docs, "allow-dns")["policyTypes"] == ["Egress"]
    assert set(d["kind"] for d in docs) == {"NetworkPolicy"}
    assert all(d["metadata"]["namespace"] == "vault" for d in docs)


def test_servers_reach_consul_http_only(production):
    [rule] = _policy(_manifests(_build(production)), "allow-consul")["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8500}]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "consul"}},
                           "podSelector": {"matchLabels": consul.server_labels()}}]


def test_servers_reach_the_api_server_for_token_review(production):
    policy = _policy(_manifests(_build(production)), "allow-apiserver")
    assert policy["podSelector"] == {"matchLabels": SERVER}
    assert policy["egress"][0]["ports"] == [{"protocol": "TCP", "port": 6443}]


def test_servers_forward_to_each_other(production):
    policy = _policy(_manifests(_build(production)), "allow-server-cluster")
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vault"}},
              "podSelector": {"matchLabels": SERVER}}]
    ports = [{"protocol": "TCP", "port": 8200}, {"protocol": "TCP", "port": 8201}]
    assert policy["ingress"] == [{"from": peers, "ports": ports}]
    assert policy["egress"] == [{"to": peers, "ports": ports}]


def test_api_is_open_to_external_secrets_and_monitoring_only(production):
    [rule] = _policy(_manifests(_build(production)), "allow-api-clients")["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8200}]
    namespaces = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rule["from"]]
    assert namespaces == ["external-secrets", "monitoring"]


def test_generated_documents_share_no_objects(production):
    spec = _build(production, injector=True)
    assert "&id" not in yaml.safe_dump_all(_manifests(spec)) + yaml.safe_dump(_values(spec))

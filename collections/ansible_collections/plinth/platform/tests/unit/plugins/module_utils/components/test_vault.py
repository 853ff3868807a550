# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Vault: HA servers on the worker pool whose storage is the Consul server Service."""

from __future__ import absolute_import, annotations, division, print_function

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils.components import consul, vault
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    DEDICATED, build, check_errors, manifests_of, network_policy, spec_errors, taint_workers, values_of)

__metaclass__ = type

SERVER = {"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "vault", "component": "server"}


@pytest.fixture
def values(production):
    return values_of(build(production), "vault")


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
    config = values_of(build(production, consul={"namespace": "kv"}), "vault")["server"]["ha"]["config"]
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
    values = values_of(build(taint_workers(production), consul={"gossip_encryption": "none"}), "vault")
    assert values["server"]["tolerations"] == [dict(DEDICATED, operator="Equal")]


def test_disruption_budget_keeps_a_majority(values):
    assert values["server"]["ha"]["disruptionBudget"] == {"enabled": True, "maxUnavailable": 1}


def test_single_server_has_no_disruption_budget(production):
    values = values_of(build(production, vault={"replicas": 1}), "vault")
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
    off = values_of(build(production, vault={"ui": False}), "vault")
    assert off["ui"]["enabled"] is False
    assert "ui = false" in off["server"]["ha"]["config"]


def test_metrics_with_monitoring(values):
    assert values["serverTelemetry"]["serviceMonitor"]["enabled"] is True
    config = values["server"]["ha"]["config"]
    assert 'unauthenticated_metrics_access = "true"' in config
    assert 'prometheus_retention_time = "30s"' in config


def test_unauthenticated_metrics_sit_in_the_listener_telemetry_block(values):
    # Only there does Vault serve /v1/sys/metrics without a token, on each server for itself.
    config = values["server"]["ha"]["config"]
    listener = config[config.index('listener "tcp" {'):config.index('storage "consul"')]
    assert 'telemetry {\n    unauthenticated_metrics_access = "true"\n  }' in listener


def test_service_monitor_scrapes_every_server_sealed_or_standby(values):
    monitor = values["serverTelemetry"]["serviceMonitor"]
    # vault-internal (headless, not-ready addresses published) rather than vault-active: a sealed
    # server must still be scraped for vault_core_unsealed to read 0.
    assert monitor["matchLabels"] == {"vault-internal": "true"}
    assert monitor["interval"] == "30s"
    assert monitor["scrapeTimeout"] == "10s"
    assert "tlsConfig" not in monitor
    # kube-prometheus-stack selects every ServiceMonitor: no selector labels needed.
    assert "selectors" not in monitor


def test_service_monitor_verifies_vault_certificate_with_tls(production):
    spec = build(production, vault={"tls_secret_name": "vault-server-tls", "tls_ca_certificate":
                                    "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----"})
    monitor = values_of(spec, "vault")["serverTelemetry"]["serviceMonitor"]
    assert monitor["tlsConfig"] == {"ca": {"secret": {"name": "vault-server-tls", "key": "ca.crt"}},
                                    "serverName": "vault.vault.svc"}


def test_chart_rules_stay_off_the_chart_ships_none(values):
    assert "prometheusRules" not in values["serverTelemetry"]


def test_prometheus_reaches_every_server_on_the_api_port(production):
    policy = network_policy(manifests_of(build(production), "vault"), "allow-api-clients")
    assert policy["podSelector"] == {"matchLabels": SERVER}
    [rule] = policy["ingress"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in rule["from"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8200}]


def test_no_prometheus_peer_without_monitoring(production):
    spec = build(production)
    spec["components"]["monitoring"]["enabled"] = False
    [rule] = network_policy(manifests_of(spec, "vault"), "allow-api-clients")["ingress"]
    namespaces = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rule["from"]]
    assert namespaces == ["external-secrets"]


def test_no_metrics_without_monitoring(production):
    spec = build(production)
    spec["components"]["monitoring"]["enabled"] = False
    values = values_of(spec, "vault")
    assert "serverTelemetry" not in values
    assert "telemetry" not in values["server"]["ha"]["config"]


def test_tls_from_an_operator_made_secret(production):
    spec = build(production, vault={"tls_secret_name": "vault-server-tls", "tls_ca_certificate":
                                    "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----"})
    values = values_of(spec, "vault")
    assert values["global"]["tlsDisable"] is False
    config = values["server"]["ha"]["config"]
    assert 'tls_cert_file = "/vault/userconfig/tls/tls.crt"' in config
    assert "tls_disable" not in config
    assert values["server"]["volumes"] == [{"name": "tls", "secret": {"secretName": "vault-server-tls"}}]
    assert values["server"]["volumeMounts"][0]["mountPath"] == "/vault/userconfig/tls"
    assert vault.address(spec) == "https://vault.vault.svc:8200"


def test_address_is_the_vault_service(production):
    assert vault.address(build(production)) == "http://vault.vault.svc:8200"


def test_consul_token_comes_from_a_secret_when_consul_has_acls(production):
    spec = build(production, consul={"acls": True}, vault={"consul_token_secret_name": "vault-kv-token"})
    values = values_of(spec, "vault")
    assert values["server"]["extraSecretEnvironmentVars"] == [
        {"envName": "CONSUL_HTTP_TOKEN", "secretName": "vault-kv-token", "secretKey": "token"}]
    assert "token" not in values["server"]["ha"]["config"]


def test_no_consul_token_without_acls(values):
    assert "extraSecretEnvironmentVars" not in values["server"]


def test_other_backends_are_rejected(production):
    assert spec_errors(production, vault={"backend": "raft"}) == [
        "plinth_components.vault.backend: got 'raft'; only 'consul' is supported: Vault stores its data "
        "in the in-cluster Consul (raft is not offered)"]


def test_consul_must_be_enabled(production):
    spec = build(production)
    spec["components"]["consul"]["enabled"] = False
    assert check_errors(spec, "vault") == [
        "plinth_components.vault.backend: got 'consul'; needs plinth_components.consul.enabled: true "
        "(Vault stores its data in the in-cluster Consul)"]


def test_more_servers_than_workers_is_rejected(production):
    assert spec_errors(production, vault={"replicas": 4}) == [
        "plinth_components.vault.replicas: got 4; 4 Vault servers need 4 hosts in pool 'worker' "
        "(group workers has 3)"]


def test_injector_when_asked(production):
    spec = build(taint_workers(production), consul={"gossip_encryption": "none"}, vault={"injector": True})
    injector = values_of(spec, "vault")["injector"]
    assert injector["enabled"] is True
    assert injector["replicas"] == 2
    assert injector["nodeSelector"] == {"node.role": "worker"}
    assert injector["tolerations"] == [dict(DEDICATED, operator="Equal")]
    assert injector["securityContext"]["pod"]["seccompProfile"] == {"type": "RuntimeDefault"}
    docs = manifests_of(spec, "vault")
    webhook = network_policy(docs, "allow-injector-webhook")
    assert webhook["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    # Injected agents run in any namespace.
    assert network_policy(docs, "allow-api-clients")["ingress"][0]["from"] == [{"namespaceSelector": {}}]


def test_network_policies_deny_by_default(production):
    docs = manifests_of(build(production), "vault")
    assert network_policy(docs, "default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert network_policy(docs, "allow-dns")["policyTypes"] == ["Egress"]
    assert set(d["kind"] for d in docs) == {"NetworkPolicy"}
    assert all(d["metadata"]["namespace"] == "vault" for d in docs)


def test_servers_reach_consul_http_only(production):
    [rule] = network_policy(manifests_of(build(production), "vault"), "allow-consul")["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8500}]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "consul"}},
                           "podSelector": {"matchLabels": consul.server_labels()}}]


def test_servers_reach_the_api_server_for_token_review(production):
    policy = network_policy(manifests_of(build(production), "vault"), "allow-apiserver")
    assert policy["podSelector"] == {"matchLabels": SERVER}
    assert policy["egress"][0]["ports"] == [{"protocol": "TCP", "port": 6443}]


def test_servers_forward_to_each_other(production):
    policy = network_policy(manifests_of(build(production), "vault"), "allow-server-cluster")
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vault"}},
              "podSelector": {"matchLabels": SERVER}}]
    ports = [{"protocol": "TCP", "port": 8200}, {"protocol": "TCP", "port": 8201}]
    assert policy["ingress"] == [{"from": peers, "ports": ports}]
    assert policy["egress"] == [{"to": peers, "ports": ports}]


def test_api_is_open_to_external_secrets_and_monitoring_only(production):
    [rule] = network_policy(manifests_of(build(production), "vault"), "allow-api-clients")["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8200}]
    namespaces = [peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for peer in rule["from"]]
    assert namespaces == ["external-secrets", "monitoring"]


def test_generated_documents_share_no_objects(production):
    spec = build(production, vault={"injector": True})
    text = yaml.safe_dump_all(manifests_of(spec, "vault")) + yaml.safe_dump(values_of(spec, "vault"))
    assert "&id" not in text


def test_init_defaults_are_five_shares_threshold_three_and_the_root_token_revoked(production):
    init = build(production)["components"]["vault"]["init"]
    assert init == {"key_shares": 5, "key_threshold": 3, "pgp_keys": [], "root_token_pgp_key": None,
                    "keep_root_token": False}


@pytest.mark.parametrize("init, message", [
    ({"key_shares": 3, "key_threshold": 4},
     "plinth_components.vault.init.key_threshold: got 4; must not exceed key_shares (3)"),
    ({"key_shares": 5, "key_threshold": 1},
     "plinth_components.vault.init.key_threshold: got 1; must be at least 2 when there are several shares"),
    ({"key_shares": 2, "key_threshold": 2, "pgp_keys": ["a2V5MQ=="]},
     "plinth_components.vault.init.pgp_keys: got '1 keys'; must hold one key per share (key_shares is 2)"),
    ({"key_shares": 300}, "plinth_components.vault.init.key_shares: got 300"),
])
def test_bad_init_settings_are_named_with_the_rule(production, init, message):
    errors = spec_errors(production, vault={"init": init})
    assert any(e.startswith(message) for e in errors), errors


def test_shamir_seal_by_default_adds_nothing(values):
    assert "seal " not in values["server"]["ha"]["config"]


def test_transit_auto_unseal_is_rendered_with_its_token_from_a_secret(production):
    seal = {"type": "transit", "address": "https://unseal.example.com:8200", "key_name": "platform-unseal",
            "credentials_secret_name": "vault-transit-token"}
    spec = build(production, vault={"seal": seal})
    values = values_of(spec, "vault")
    config = values["server"]["ha"]["config"]
    assert ('seal "transit" {\n  address = "https://unseal.example.com:8200"\n  key_name = "platform-unseal"\n'
            '  mount_path = "transit/"\n}') in config
    assert "token" not in config
    assert values["server"]["extraSecretEnvironmentVars"] == [
        {"envName": "VAULT_TOKEN", "secretKey": "token", "secretName": "vault-transit-token"}]
    egress = network_policy(manifests_of(spec, "vault"), "allow-seal")["egress"]
    assert egress == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}],
                       "ports": [{"protocol": "TCP", "port": 8200}]}]


def test_aws_kms_auto_unseal_uses_the_instance_role_unless_a_secret_is_named(production):
    seal = {"type": "awskms", "region": "eu-west-1", "kms_key_id": "alias/vault-unseal"}
    values = values_of(build(production, vault={"seal": seal}), "vault")
    assert 'seal "awskms" {\n  region = "eu-west-1"\n  kms_key_id = "alias/vault-unseal"\n}' in \
        values["server"]["ha"]["config"]
    assert "extraSecretEnvironmentVars" not in values["server"]
    seal["credentials_secret_name"] = "vault-kms"
    values = values_of(build(production, vault={"seal": seal}), "vault")
    assert [e["envName"] for e in values["server"]["extraSecretEnvironmentVars"]] == [
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize("seal, message", [
    ({"type": "transit", "key_name": "k", "credentials_secret_name": "t"},
     "plinth_components.vault.seal.address: got None; required with seal type transit"),
    ({"type": "awskms", "region": "eu-west-1"},
     "plinth_components.vault.seal.kms_key_id: got None; required with seal type awskms"),
    ({"type": "shamir", "region": "eu-west-1"},
     "plinth_components.vault.seal.region: got 'eu-west-1'; only applies to seal type awskms, not shamir"),
    ({"type": "transit", "address": "unseal.example.com", "key_name": "k", "credentials_secret_name": "t"},
     "plinth_components.vault.seal.address: got 'unseal.example.com'; must be an http(s):// URL"),
    ({"type": "awskms", "region": 'eu"west', "kms_key_id": "k"},
     "plinth_components.vault.seal.region: got 'eu\"west'; must not contain a double quote"),
    ({"type": "gcpckms"}, "plinth_components.vault.seal.type: got 'gcpckms'; must be one of"),
])
def test_bad_seal_settings_are_named_with_the_rule(production, seal, message):
    errors = spec_errors(production, vault={"seal": seal})
    assert any(e.startswith(message) for e in errors), errors

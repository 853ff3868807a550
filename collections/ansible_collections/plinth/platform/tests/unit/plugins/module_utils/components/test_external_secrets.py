# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""External Secrets: HA controller, webhook and cert controller, and the per-namespace SecretStores for Vault."""

from __future__ import absolute_import, annotations, division, print_function

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import common, external_secrets
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    DEDICATED, build, check_errors, manifests_of, network_policy, spec_errors, taint_workers, values_of)

__metaclass__ = type

DEPLOYMENTS = ("controller", "webhook", "certController")


def _deployment(values, name):
    """The values block of one of the chart's three Deployments."""
    return values if name == "controller" else values[name]


def _store(spec, namespace="kong"):
    return external_secrets.secret_store(spec, namespace)


@pytest.fixture
def values(production):
    return values_of(build(production), "external_secrets")


def test_controller_runs_two_replicas_with_leader_election(values):
    assert values["replicaCount"] == 2
    assert values["leaderElect"] is True


def test_webhook_and_cert_controller_are_ha_too(values):
    assert values["webhook"]["replicaCount"] == 2
    assert values["certController"]["replicaCount"] == 2


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_every_deployment_has_a_budget_and_worker_placement(values, name):
    block = _deployment(values, name)
    assert block["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert block["nodeSelector"] == {"node.role": "worker"}
    assert block["tolerations"] == []
    [spread] = block["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    # The chart fills in each Deployment's own selector when none is given.
    assert "labelSelector" not in spread


@pytest.mark.parametrize("name", DEPLOYMENTS)
def test_tainted_pool_gets_tolerations(production, name):
    spec = build(taint_workers(production), consul={"gossip_encryption": "none"})
    block = _deployment(values_of(spec, "external_secrets"), name)
    assert block["tolerations"] == [dict(DEDICATED, operator="Equal")]


def test_replicas_option_drives_all_three(production):
    values = values_of(build(production, external_secrets={"replicas": 3}), "external_secrets")
    assert [values["replicaCount"], values["webhook"]["replicaCount"], values["certController"]["replicaCount"]] \
        == [3, 3, 3]
    assert values["podDisruptionBudget"]["minAvailable"] == 2


def test_single_replica_has_no_budget(production):
    values = values_of(build(production, external_secrets={"replicas": 1}), "external_secrets")
    for name in DEPLOYMENTS:
        assert _deployment(values, name)["podDisruptionBudget"]["enabled"] is False


def test_crds_come_with_the_chart(values):
    assert values["installCRDs"] is True


def test_service_monitors_with_monitoring(values):
    assert values["serviceMonitor"] == {"enabled": True, "renderMode": "alwaysRender"}


def test_no_service_monitors_without_monitoring(production):
    spec = build(production)
    spec["components"]["monitoring"]["enabled"] = False
    assert "serviceMonitor" not in values_of(spec, "external_secrets")
    assert "allow-metrics" not in [d["metadata"]["name"] for d in manifests_of(spec, "external_secrets")]


def test_secret_store_reads_vault_kv_v2_with_the_namespace_role(production):
    spec = build(production)
    store = _store(spec)
    assert store["apiVersion"] == "external-secrets.io/v1"
    assert store["kind"] == "SecretStore"
    assert store["metadata"]["name"] == "vault" == common.secret_store(spec)
    assert store["metadata"]["namespace"] == "kong"
    provider = store["spec"]["provider"]["vault"]
    assert provider["server"] == "http://vault.vault.svc:8200"
    assert provider["path"] == "secret"
    assert provider["version"] == "v2"
    # No namespace: a SecretStore may only name a ServiceAccount of its own namespace.
    assert provider["auth"] == {"kubernetes": {
        "mountPath": "kubernetes",
        "role": "plinth-kong",
        "serviceAccountRef": {"name": "vault-secrets-reader"},
    }}
    assert "caProvider" not in provider


def test_reader_service_account_is_no_pods_identity(production):
    account = external_secrets.reader_service_account(build(production), "store")
    assert account["metadata"]["name"] == "vault-secrets-reader"
    assert account["metadata"]["namespace"] == "store"
    assert account["automountServiceAccountToken"] is False


def test_secret_access_objects_sync_before_the_external_secrets(production):
    spec = build(production)
    account, store = external_secrets.secret_access_objects(spec, "consul", "SkipDryRunOnMissingResource=true")
    assert (account["kind"], store["kind"]) == ("ServiceAccount", "SecretStore")
    assert account["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "-1"}
    assert store["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "-1",
                                                "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"}
    _account, store = external_secrets.secret_access_objects(spec, "kong")
    assert store["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "-1"}


def test_no_cluster_secret_store(production):
    docs = manifests_of(build(production), "external_secrets")
    assert [d["kind"] for d in docs] == ["NetworkPolicy"] * len(docs)


def test_store_options(production):
    spec = build(production, external_secrets={"store_name": "platform-vault", "vault_kv_path": "kv",
                                               "vault_role_prefix": "eso-", "reader_service_account": "reader",
                                               "namespace": "eso"})
    store = _store(spec, "payments")
    assert store["metadata"]["name"] == "platform-vault" == common.secret_store(spec)
    provider = store["spec"]["provider"]["vault"]
    assert provider["path"] == "kv"
    assert provider["auth"]["kubernetes"]["role"] == "eso-payments" == external_secrets.role(spec, "payments")
    assert provider["auth"]["kubernetes"]["serviceAccountRef"] == {"name": "reader"}
    assert external_secrets.reader_service_account(spec, "payments")["metadata"]["name"] == "reader"


@pytest.mark.parametrize("prefix", ["team/", "a b", "x:"])
def test_role_prefix_must_fit_a_vault_name(production, prefix):
    assert spec_errors(production, external_secrets={"vault_role_prefix": prefix}) == [
        "plinth_components.external_secrets.vault_role_prefix: got %r; must be letters, digits, '-', '_' and '.' "
        "(it starts a Vault role and policy name)" % prefix]


def test_vault_role_is_gone(production):
    errors = spec_errors(production, external_secrets={"vault_role": "external-secrets"})
    assert [e for e in errors if e.startswith("plinth_components.external_secrets.vault_role")]


CA = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----"


def test_store_follows_vault_namespace_and_tls(production):
    spec = build(production, vault={"namespace": "secrets", "tls_secret_name": "vault-server-tls",
                                    "tls_ca_certificate": CA})
    provider = _store(spec, "store")["spec"]["provider"]["vault"]
    assert provider["server"] == "https://vault.secrets.svc:8200"
    # ESO refuses caProvider.namespace on a SecretStore: the CA sits in the store's own namespace.
    assert provider["caProvider"] == {"type": "ConfigMap", "name": "vault-ca", "key": "ca.crt"}


def test_with_tls_every_reading_namespace_gets_the_ca_beside_its_store(production):
    spec = build(production, vault={"tls_secret_name": "vault-server-tls", "tls_ca_certificate": CA})
    docs = gitops.raw_manifests(spec)
    config_maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "vault-ca"]
    stores = [d for d in docs if d["kind"] == "SecretStore"]
    assert sorted(c["metadata"]["namespace"] for c in config_maps) == \
        sorted(store["metadata"]["namespace"] for store in stores)
    # Without TLS (the golden trees) there is none.
    assert config_maps and all(c["data"] == {"ca.crt": CA + "\n"} for c in config_maps)


@pytest.mark.parametrize("vault_options, message", [
    ({"tls_secret_name": "vault-server-tls"}, "plinth_components.vault.tls_ca_certificate: got None; required "
                                              "with tls_secret_name"),
    ({"tls_secret_name": "vault-server-tls", "tls_ca_certificate": "not a certificate"},
     "plinth_components.vault.tls_ca_certificate: got 'not a certificate'; must be one PEM certificate"),
    ({"tls_ca_certificate": CA}, "plinth_components.vault.tls_ca_certificate: got '(a certificate)'; only applies "
                                 "with tls_secret_name"),
])
def test_tls_needs_its_ca_certificate(production, vault_options, message):
    errors = spec_errors(production, vault=vault_options)
    assert any(e.startswith(message) for e in errors), errors


def test_vault_must_be_enabled(production):
    spec = build(production)
    spec["components"]["vault"]["enabled"] = False
    assert check_errors(spec, "external_secrets") == [
        "plinth_components.external_secrets.enabled: got True; the SecretStores read the in-cluster "
        "Vault: needs plinth_components.vault.enabled: true"]


def test_network_policies(production):
    docs = manifests_of(build(production), "external_secrets")
    assert all(d["metadata"]["namespace"] == "external-secrets" for d in docs if d["kind"] == "NetworkPolicy")
    assert network_policy(docs, "default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert network_policy(docs, "allow-dns")["policyTypes"] == ["Egress"]
    assert network_policy(docs, "allow-apiserver")["podSelector"] == {}


def test_controller_reaches_vault_api_only(production):
    policy = network_policy(manifests_of(build(production), "external_secrets"), "allow-vault")
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "external-secrets"
    assert policy["egress"] == [{
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vault"}}}],
        "ports": [{"protocol": "TCP", "port": 8200}],
    }]


def test_webhook_is_reachable_from_anywhere(production):
    policy = network_policy(manifests_of(build(production), "external_secrets"), "allow-webhook")
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "external-secrets-webhook"
    # The API server calls from the host network: no "from" restriction.
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 10250}]}]


def test_metrics_only_from_monitoring(production):
    policy = network_policy(manifests_of(build(production), "external_secrets"), "allow-metrics")
    assert policy["ingress"] == [{
        "ports": [{"protocol": "TCP", "port": 8080}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }]


def test_no_secret_values_and_no_shared_objects(production):
    spec = build(production)
    docs = manifests_of(spec, "external_secrets")
    assert "Secret" not in [d["kind"] for d in docs]
    assert "&id" not in yaml.safe_dump_all(docs) + yaml.safe_dump(values_of(spec, "external_secrets"))

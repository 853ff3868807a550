# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""External Secrets: HA controller, webhook and cert controller, and the per-namespace SecretStores for Vault."""

from __future__ import absolute_import, annotations, division, print_function

import copy

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import common, external_secrets
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    DEDICATED, build, check_errors, manifests_of, network_policy, options, spec_errors, taint_workers, values_of)

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
    docs = manifests_of(build(_vault_only(production)), "external_secrets")
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


# --- refresh intervals ---------------------------------------------------------------------

def test_refresh_interval_is_every_external_secrets_default(production):
    production[0]["plinth_apps"][1]["secrets"]["payment-service-keys"].pop("refresh", None)
    assert build(copy.deepcopy(production))["components"]["external_secrets"]["refresh_interval"] == "1h"
    spec = build(production, external_secrets={"refresh_interval": "30m"})
    secrets = [d for d in gitops.raw_manifests(spec) if d["kind"] == "ExternalSecret"]
    assert secrets
    assert {d["spec"]["refreshInterval"] for d in secrets} == {"30m"}


def test_an_explicit_refresh_wins(production):
    spec = build(production, external_secrets={"refresh_interval": "30m"})
    secret = common.external_secret(spec, "db", "shop", {"password": ("apps/shop/db", "password")}, refresh="5m")
    assert secret["spec"]["refreshInterval"] == "5m"


@pytest.mark.parametrize("bad", ["1d", "0s", "soon", "1.5h", ""])
def test_refresh_interval_must_be_a_go_duration(production, bad):
    errors = spec_errors(production, external_secrets={"refresh_interval": bad})
    assert ("plinth_components.external_secrets.refresh_interval: got %r; must be a positive duration in h, m, s "
            "or ms, like 1h, 30m or 1h30m (no d or w)" % bad) in errors


def test_app_secret_refresh_is_checked(production):
    production[0]["plinth_apps"][0]["secrets"]["store-api-db"]["refresh"] = "2d"
    errors = spec_errors(production)
    assert ("plinth_apps[0].secrets.store-api-db.refresh: got '2d'; must be a positive duration in h, m, s or ms, "
            "like 1h, 30m or 1h30m (no d or w)") in errors


# --- AWS stores ----------------------------------------------------------------------------

AWS_KEYS = {"name": "aws-main", "provider": "aws", "region": "eu-central-1", "auth": {"secret_name": "aws-keys"}}
AWS_JWT = {"name": "aws-params", "provider": "aws", "region": "us-east-1", "service": "ParameterStore",
           "role": "arn:aws:iam::123456789012:role/plinth-secrets", "auth": {"service_account": "aws-reader"}}


def _vault_only(production):
    """The inventory with no ClusterSecretStore: no stores, and payment-service's key read from Vault."""
    options(production, "external_secrets").pop("stores", None)
    production[0]["plinth_apps"][1]["secrets"]["payment-service-keys"].pop("store", None)
    return production


def _with_store(production, store="aws-main", app=1):
    production[0]["plinth_apps"][app]["secrets"]["payment-service-keys"]["store"] = store
    return production


def _stores(spec):
    return dict((d["metadata"]["name"], d) for d in manifests_of(spec, "external_secrets")
                if d["kind"] == "ClusterSecretStore")


def test_an_aws_store_reads_keys_from_a_secret_made_out_of_band(production):
    spec = build(_with_store(production), external_secrets={"stores": [AWS_KEYS]})
    store = _stores(spec)["aws-main"]
    assert store["apiVersion"] == "external-secrets.io/v1"
    assert store["metadata"]["annotations"] == {"argocd.argoproj.io/sync-wave": "1",
                                                "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"}
    assert "namespace" not in store["metadata"]
    assert store["spec"] == {
        "conditions": [{"namespaces": ["payments"]}],
        "provider": {"aws": {
            "service": "SecretsManager", "region": "eu-central-1",
            "auth": {"secretRef": {
                "accessKeyIDSecretRef": {"name": "aws-keys", "namespace": "external-secrets", "key": "access-key-id"},
                "secretAccessKeySecretRef": {"name": "aws-keys", "namespace": "external-secrets",
                                             "key": "secret-access-key"},
            }},
        }},
    }


def test_an_aws_store_may_log_in_with_a_service_account_and_assume_a_role(production):
    spec = build(_vault_only(production),
                 external_secrets={"stores": [dict(AWS_JWT, namespaces=["billing", "analytics"])]})
    provider = _stores(spec)["aws-params"]["spec"]["provider"]["aws"]
    assert provider["service"] == "ParameterStore"
    assert provider["role"] == "arn:aws:iam::123456789012:role/plinth-secrets"
    assert provider["auth"] == {"jwt": {"serviceAccountRef": {"name": "aws-reader", "namespace": "external-secrets"}}}
    assert _stores(spec)["aws-params"]["spec"]["conditions"] == [{"namespaces": ["analytics", "billing"]}]


def test_a_store_no_namespace_reads_is_not_rendered(production):
    assert _stores(build(_vault_only(production), external_secrets={"stores": [AWS_KEYS]})) == {}


def test_stores_open_egress_to_the_internet_on_443_only(production):
    _vault_only(production)
    plain = manifests_of(build(copy.deepcopy(production)), "external_secrets")
    assert "allow-aws" not in [d["metadata"]["name"] for d in plain]
    docs = manifests_of(build(production, external_secrets={"stores": [AWS_KEYS]}), "external_secrets")
    rule = network_policy(docs, "allow-aws")["egress"][0]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}]
    assert rule["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert "10.0.0.0/8" in rule["to"][0]["ipBlock"]["except"]


def test_an_external_secret_may_read_a_cluster_store(production):
    spec = build(production)
    secret = common.external_secret(spec, "keys", "payments", {"api-key": ("prod/payments", "api-key")},
                                    store="aws-main")
    assert secret["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "aws-main"}
    assert not external_secrets.reads_vault(secret)
    assert external_secrets.reads_vault(common.external_secret(spec, "k", "payments", {}))


def test_store_credentials_cannot_be_inline(production):
    store = dict(AWS_KEYS, auth={"secret_name": "aws-keys", "access_key_id": "AKIAEXAMPLE"})
    errors = spec_errors(production, external_secrets={"stores": [store]})
    assert any(e.startswith("plinth_components.external_secrets.stores[0].auth.access_key_id: unknown key")
               for e in errors), errors
    assert not any("AKIAEXAMPLE" in e for e in errors)


@pytest.mark.parametrize("auth", [{}, {"secret_name": "aws-keys", "service_account": "aws-reader"}])
def test_store_needs_exactly_one_way_to_authenticate(production, auth):
    errors = spec_errors(production, external_secrets={"stores": [dict(AWS_KEYS, auth=auth)]})
    assert any(e.startswith("plinth_components.external_secrets.stores[0].auth: got ") and
               "set exactly one of secret_name" in e for e in errors), errors


def test_store_fields_are_checked(production):
    store = dict(AWS_JWT, provider="gcp", region="Frankfurt", service="Vault", role="admin")
    errors = spec_errors(production, external_secrets={"stores": [store, dict(AWS_JWT)]})
    assert "plinth_components.external_secrets.stores[0].provider: got 'gcp'; must be one of 'aws'" in errors
    assert ("plinth_components.external_secrets.stores[0].region: got 'Frankfurt'; must be an AWS region like "
            "eu-central-1") in errors
    assert ("plinth_components.external_secrets.stores[0].service: got 'Vault'; must be one of 'SecretsManager', "
            "'ParameterStore'") in errors
    assert ("plinth_components.external_secrets.stores[0].role: got 'admin'; must be an IAM role ARN like "
            "arn:aws:iam::123456789012:role/plinth-secrets") in errors
    assert ("plinth_components.external_secrets.stores[1].name: got 'aws-params'; store names must be unique "
            "(also used by plinth_components.external_secrets.stores[0])") in errors


def test_app_secret_must_name_a_known_store(production):
    errors = spec_errors(_with_store(production, "aws-typo"), external_secrets={"stores": [AWS_KEYS]})
    assert ("plinth_apps[1].secrets.payment-service-keys.store: got 'aws-typo'; no such store in "
            "plinth_components.external_secrets.stores (known: aws-main); leave it out to read Vault") in errors

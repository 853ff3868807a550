# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""External Secrets: HA controller, webhook and cert controller, and the ClusterSecretStore for Vault."""

from __future__ import absolute_import, annotations, division, print_function

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import schema
from ansible_collections.plinth.platform.plugins.module_utils.components import common, external_secrets, registry
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

__metaclass__ = type

DEDICATED = {"key": "dedicated", "value": "platform", "effect": "NoSchedule"}
DEPLOYMENTS = ("controller", "webhook", "certController")


def _declared_only(variables):
    """Drop keys a neighbour component does not declare yet: this test is about External Secrets."""
    for component in registry():
        declared = set(["enabled", "pool", "namespace"]) | set(component.options) | set(
            r.chart_option for r in component.releases if r.chart)
        settings = variables["plinth_components"].get(component.key)
        if settings is not None:
            variables["plinth_components"][component.key] = dict(
                (k, v) for k, v in settings.items() if k in declared)
    return variables


def _build(inventory, vault_options=None, **options):
    variables, groups, hostvars = inventory
    _declared_only(variables)
    variables["plinth_components"].setdefault("vault", {}).update(vault_options or {})
    variables["plinth_components"].setdefault("external_secrets", {}).update(options)
    return build_spec(variables, groups, hostvars)


def _values(spec):
    [release] = external_secrets.COMPONENT.releases
    return release.values(spec, spec["components"]["external_secrets"])


def _manifests(spec):
    [release] = external_secrets.COMPONENT.releases
    return release.manifests(spec, spec["components"]["external_secrets"])


def _deployment(values, name):
    """The values block of one of the chart's three Deployments."""
    return values if name == "controller" else values[name]


def _store(spec):
    [store] = [d for d in _manifests(spec) if d["kind"] == "ClusterSecretStore"]
    return store


def _policy(docs, name):
    [found] = [d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == name]
    return found["spec"]


@pytest.fixture
def values(production):
    return _values(_build(production))


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
    production[0]["plinth_node_pools"]["worker"]["taints"] = [dict(DEDICATED)]
    production[0]["plinth_components"].setdefault("consul", {})["gossip_encryption"] = "none"
    block = _deployment(_values(_build(production)), name)
    assert block["tolerations"] == [dict(DEDICATED, operator="Equal")]


def test_replicas_option_drives_all_three(production):
    values = _values(_build(production, replicas=3))
    assert [values["replicaCount"], values["webhook"]["replicaCount"], values["certController"]["replicaCount"]] \
        == [3, 3, 3]
    assert values["podDisruptionBudget"]["minAvailable"] == 2


def test_single_replica_has_no_budget(production):
    values = _values(_build(production, replicas=1))
    for name in DEPLOYMENTS:
        assert _deployment(values, name)["podDisruptionBudget"]["enabled"] is False


def test_crds_come_with_the_chart(values):
    assert values["installCRDs"] is True


def test_service_monitors_with_monitoring(values):
    assert values["serviceMonitor"] == {"enabled": True, "renderMode": "alwaysRender"}


def test_no_service_monitors_without_monitoring(production):
    spec = _build(production)
    spec["components"]["monitoring"]["enabled"] = False
    assert "serviceMonitor" not in _values(spec)
    assert "allow-metrics" not in [d["metadata"]["name"] for d in _manifests(spec)]


def test_cluster_secret_store_reads_vault_kv_v2_with_kubernetes_auth(production):
    spec = _build(production)
    store = _store(spec)
    assert store["apiVersion"] == "external-secrets.io/v1"
    assert store["metadata"]["name"] == "vault" == common.secret_store(spec)
    assert "namespace" not in store["metadata"]
    provider = store["spec"]["provider"]["vault"]
    assert provider["server"] == "http://vault.vault.svc:8200"
    assert provider["path"] == "secret"
    assert provider["version"] == "v2"
    assert provider["auth"] == {"kubernetes": {
        "mountPath": "kubernetes",
        "role": "external-secrets",
        "serviceAccountRef": {"name": "external-secrets", "namespace": "external-secrets"},
    }}
    assert "caProvider" not in provider


def test_cluster_secret_store_waits_for_the_crds_of_its_own_app(production):
    annotations = _store(_build(production))["metadata"]["annotations"]
    assert annotations["argocd.argoproj.io/sync-options"] == "SkipDryRunOnMissingResource=true"
    assert int(annotations["argocd.argoproj.io/sync-wave"]) > 0


def test_store_options(production):
    spec = _build(production, store_name="platform-vault", vault_kv_path="kv", vault_role="eso",
                  namespace="eso")
    store = _store(spec)
    assert store["metadata"]["name"] == "platform-vault" == common.secret_store(spec)
    provider = store["spec"]["provider"]["vault"]
    assert provider["path"] == "kv"
    assert provider["auth"]["kubernetes"]["role"] == "eso"
    assert provider["auth"]["kubernetes"]["serviceAccountRef"] == {"name": "external-secrets", "namespace": "eso"}


def test_store_follows_vault_namespace_and_tls(production):
    spec = _build(production, vault_options={"namespace": "secrets", "tls_secret_name": "vault-server-tls"})
    provider = _store(spec)["spec"]["provider"]["vault"]
    assert provider["server"] == "https://vault.secrets.svc:8200"
    assert provider["caProvider"] == {"type": "Secret", "name": "vault-server-tls", "namespace": "secrets",
                                      "key": "ca.crt"}


def test_vault_must_be_enabled(production):
    spec = _build(production)
    spec["components"]["vault"]["enabled"] = False
    errors = schema.Errors()
    external_secrets.COMPONENT.check(spec, spec["components"]["external_secrets"], errors,
                                     "plinth_components.external_secrets")
    assert errors.items == [
        "plinth_components.external_secrets.enabled: got True; the ClusterSecretStore reads the in-cluster "
        "Vault: needs plinth_components.vault.enabled: true"]


def test_network_policies(production):
    docs = _manifests(_build(production))
    assert all(d["metadata"]["namespace"] == "external-secrets" for d in docs if d["kind"] == "NetworkPolicy")
    assert _policy(docs, "default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert _policy(docs, "allow-dns")["policyTypes"] == ["Egress"]
    assert _policy(docs, "allow-apiserver")["podSelector"] == {}


def test_controller_reaches_vault_api_only(production):
    policy = _policy(_manifests(_build(production)), "allow-vault")
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "external-secrets"
    assert policy["egress"] == [{
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vault"}}}],
        "ports": [{"protocol": "TCP", "port": 8200}],
    }]


def test_webhook_is_reachable_from_anywhere(production):
    policy = _policy(_manifests(_build(production)), "allow-webhook")
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "external-secrets-webhook"
    # The API server calls from the host network: no "from" restriction.
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 10250}]}]


def test_metrics_only_from_monitoring(production):
    policy = _policy(_manifests(_build(production)), "allow-metrics")
    assert policy["ingress"] == [{
        "ports": [{"protocol": "TCP", "port": 8080}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }]


def test_no_secret_values_and_no_shared_objects(production):
    spec = _build(production)
    docs = _manifests(spec)
    assert "Secret" not in [d["kind"] for d in docs]
    assert "&id" not in yaml.safe_dump_all(docs) + yaml.safe_dump(_values(spec))

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cloudflare Tunnel manifests: hardening, token reference, placement, network policies, checks."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import cloudflared
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

__metaclass__ = type

WAVE = "argocd.argoproj.io/sync-wave"


def _cloudflared(variables):
    return variables["plinth_components"].setdefault("cloudflared", {})


def _manifests(inventory):
    spec = build_spec(*inventory)
    return cloudflared.manifests(spec, spec["components"]["cloudflared"])


def _one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, [(d["kind"], d["metadata"]["name"]) for d in docs])
    return found[0]


def _names(docs, kind):
    return sorted(d["metadata"]["name"] for d in docs if d["kind"] == kind)


def _pod(docs):
    return _one(docs, "Deployment")["spec"]["template"]["spec"]


def _errors(inventory):
    with pytest.raises(SpecError) as info:
        build_spec(*inventory)
    return info.value.errors


# --- workload ------------------------------------------------------------------------

def test_runs_the_remotely_managed_tunnel_with_metrics(production):
    docs = _manifests(production)
    deployment = _one(docs, "Deployment", "cloudflared")
    assert deployment["metadata"]["namespace"] == "cloudflared"
    assert deployment["spec"]["replicas"] == 2
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["cloudflared", "tunnel", "--no-autoupdate", "--metrics", "0.0.0.0:2000", "run"]
    assert container["image"] == "cloudflare/cloudflared:2026.8.2"
    assert container["livenessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert container["ports"] == [{"name": "metrics", "containerPort": 2000, "protocol": "TCP"}]
    assert container["resources"]["limits"]["memory"] == "256Mi"


def test_token_comes_from_vault_through_an_external_secret(production):
    docs = _manifests(production)
    [container] = _pod(docs)["containers"]
    assert container["env"] == [{"name": "TUNNEL_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "cloudflared-token", "key": "token"}}}]
    secret = _one(docs, "ExternalSecret", "cloudflared-token")
    assert secret["spec"]["target"]["name"] == "cloudflared-token"
    assert secret["spec"]["data"] == [{"secretKey": "token",
                                       "remoteRef": {"key": "platform/cloudflared", "property": "token"}}]
    assert secret["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "vault"}
    assert int(secret["metadata"]["annotations"][WAVE]) < 0, "the Secret exists before the pods start"
    assert not [d for d in docs if d["kind"] == "Secret"]


def test_token_vault_path_option(production):
    _cloudflared(production[0])["token_vault_path"] = "edge/tunnels/prod"
    secret = _one(_manifests(production), "ExternalSecret")
    assert secret["spec"]["data"][0]["remoteRef"] == {"key": "edge/tunnels/prod", "property": "token"}


def test_pods_are_hardened(production):
    docs = _manifests(production)
    pod = _pod(docs)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    context = pod["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    account = _one(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def test_image_option(production):
    _cloudflared(production[0])["image"] = {"repository": "registry.example.com/cloudflared", "tag": "2026.7.3"}
    assert _pod(_manifests(production))["containers"][0]["image"] == "registry.example.com/cloudflared:2026.7.3"


# --- placement and availability -------------------------------------------------------

def test_runs_on_the_worker_pool_spread_over_hosts(production):
    pod = _pod(_manifests(production))
    assert pod["nodeSelector"] == {"node.role": "worker"}
    assert pod["tolerations"] == []
    [spread] = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["labelSelector"] == {"matchLabels": {"app.kubernetes.io/name": "cloudflared"}}


def test_tainted_pool_is_tolerated(production):
    variables = production[0]
    variables["plinth_node_pools"]["worker"] = {
        "group": "workers", "labels": {"pool": "edge"},
        "taints": [{"key": "dedicated", "value": "edge", "effect": "NoSchedule"}]}
    variables["plinth_components"]["consul"]["gossip_encryption"] = "none"
    pod = _pod(_manifests(production))
    assert pod["nodeSelector"] == {"pool": "edge"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}]


@pytest.mark.parametrize("replicas, min_available", [(2, 1), (3, 2)])
def test_disruption_budget_keeps_tunnel_connectors(production, replicas, min_available):
    _cloudflared(production[0])["replicas"] = replicas
    docs = _manifests(production)
    assert _one(docs, "Deployment")["spec"]["replicas"] == replicas
    pdb = _one(docs, "PodDisruptionBudget", "cloudflared")
    assert pdb["spec"] == {"minAvailable": min_available,
                           "selector": {"matchLabels": {"app.kubernetes.io/name": "cloudflared"}}}


def test_single_replica_has_no_budget_that_would_block_drains(production):
    _cloudflared(production[0])["replicas"] = 1
    assert _names(_manifests(production), "PodDisruptionBudget") == []


# --- network policies ----------------------------------------------------------------

def test_network_policies_default_deny_and_open_only_what_the_tunnel_needs(production):
    docs = _manifests(production)
    assert _names(docs, "NetworkPolicy") == [
        "allow-cloudflare-edge", "allow-dns", "allow-gateway", "allow-metrics", "default-deny"]
    deny = _one(docs, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    [edge] = _one(docs, "NetworkPolicy", "allow-cloudflare-edge")["spec"]["egress"]
    assert edge["ports"] == [{"protocol": "TCP", "port": 7844}, {"protocol": "UDP", "port": 7844},
                             {"protocol": "TCP", "port": 443}]
    ipv4 = edge["to"][0]["ipBlock"]
    assert ipv4["cidr"] == "0.0.0.0/0"
    assert "10.0.0.0/8" in ipv4["except"] and "192.168.0.0/16" in ipv4["except"]
    [gateway] = _one(docs, "NetworkPolicy", "allow-gateway")["spec"]["egress"]
    assert gateway["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kong"}}}]
    assert [p["port"] for p in gateway["ports"]] == [8000, 8443]
    [metrics] = _one(docs, "NetworkPolicy", "allow-metrics")["spec"]["ingress"]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 2000}]


def test_cluster_networks_outside_private_ranges_are_not_internet(production):
    production[0]["plinth_service_cidr"] = "198.18.0.0/15"
    docs = _manifests(production)
    [edge] = _one(docs, "NetworkPolicy", "allow-cloudflare-edge")["spec"]["egress"]
    assert "198.18.0.0/15" in edge["to"][0]["ipBlock"]["except"]


def test_without_gateway_or_monitoring_their_rules_go(production):
    components = production[0]["plinth_components"]
    components["kong"]["enabled"] = False
    components["monitoring"]["enabled"] = False
    production[0]["plinth_apps"] = []  # their ingress needs Kong
    docs = _manifests(production)
    assert _names(docs, "NetworkPolicy") == ["allow-cloudflare-edge", "allow-dns", "default-deny"]
    assert _names(docs, "PodMonitor") == []


def test_pod_monitor_scrapes_the_metrics_port(production):
    monitor = _one(_manifests(production), "PodMonitor", "cloudflared")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "cloudflared"}}


# --- cross-checks ------------------------------------------------------------------

def test_replicas_must_fit_the_pool(production):
    _cloudflared(production[0])["replicas"] = 4
    assert ("plinth_components.cloudflared.replicas: got 4; 4 replicas need 4 hosts in pool 'worker' "
            "(group workers has 3)") in _errors(production)


def test_latest_image_is_rejected(production):
    _cloudflared(production[0])["image"] = {"tag": "latest"}
    assert ("plinth_components.cloudflared.image.tag: got 'latest'; pin a concrete cloudflared version "
            "(e.g. 2026.8.2), not 'latest'") in _errors(production)


def test_needs_external_secrets(production):
    production[0]["plinth_components"]["external_secrets"]["enabled"] = False
    assert ("plinth_components.cloudflared.enabled: got True; needs plinth_components.external_secrets.enabled: "
            "true (the tunnel token comes from Vault through an ExternalSecret)") in _errors(production)


def test_bad_vault_path_is_rejected(production):
    _cloudflared(production[0])["token_vault_path"] = "/platform/cloudflared/"
    assert ("plinth_components.cloudflared.token_vault_path: got '/platform/cloudflared/'; must be a Vault KV "
            "path like platform/cloudflared (no leading or trailing '/')") in _errors(production)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cloudflare Tunnel manifests: hardening, token reference, placement, network policies, checks."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, find, manifests_of, names_of, of_kind, spec_errors, taint_workers)

__metaclass__ = type

WAVE = "argocd.argoproj.io/sync-wave"


def _manifests(inventory, **options):
    return manifests_of(build(inventory, cloudflared=options), "cloudflared")


def _pod(docs):
    return find(docs, "Deployment")["spec"]["template"]["spec"]


# --- workload ------------------------------------------------------------------------

def test_runs_the_remotely_managed_tunnel_with_metrics(production):
    docs = _manifests(production)
    deployment = find(docs, "Deployment", "cloudflared")
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
    secret = find(docs, "ExternalSecret", "cloudflared-token")
    assert secret["spec"]["target"]["name"] == "cloudflared-token"
    assert secret["spec"]["data"] == [{"secretKey": "token",
                                       "remoteRef": {"key": "platform/cloudflared", "property": "token"}}]
    assert secret["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "vault"}
    assert int(secret["metadata"]["annotations"][WAVE]) < 0, "the Secret exists before the pods start"
    assert not of_kind(docs, "Secret")


def test_token_vault_path_option(production):
    secret = find(_manifests(production, token_vault_path="edge/tunnels/prod"), "ExternalSecret")
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
    account = find(docs, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def test_image_option(production):
    image = {"repository": "registry.example.com/cloudflared", "tag": "2026.7.3"}
    [container] = _pod(_manifests(production, image=image))["containers"]
    assert container["image"] == "registry.example.com/cloudflared:2026.7.3"


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
    taint_workers(production, "edge", labels={"pool": "edge"})
    pod = _pod(manifests_of(build(production, consul={"gossip_encryption": "none"}), "cloudflared"))
    assert pod["nodeSelector"] == {"pool": "edge"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}]


@pytest.mark.parametrize("replicas, min_available", [(2, 1), (3, 2)])
def test_disruption_budget_keeps_tunnel_connectors(production, replicas, min_available):
    docs = _manifests(production, replicas=replicas)
    assert find(docs, "Deployment")["spec"]["replicas"] == replicas
    pdb = find(docs, "PodDisruptionBudget", "cloudflared")
    assert pdb["spec"] == {"minAvailable": min_available,
                           "selector": {"matchLabels": {"app.kubernetes.io/name": "cloudflared"}}}


def test_single_replica_has_no_budget_that_would_block_drains(production):
    assert names_of(_manifests(production, replicas=1), "PodDisruptionBudget") == []


# --- network policies ----------------------------------------------------------------

def test_network_policies_default_deny_and_open_only_what_the_tunnel_needs(production):
    docs = _manifests(production)
    assert names_of(docs, "NetworkPolicy") == [
        "allow-cloudflare-edge", "allow-dns", "allow-gateway", "allow-metrics", "default-deny"]
    deny = find(docs, "NetworkPolicy", "default-deny")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    [edge] = find(docs, "NetworkPolicy", "allow-cloudflare-edge")["spec"]["egress"]
    assert edge["ports"] == [{"protocol": "TCP", "port": 7844}, {"protocol": "UDP", "port": 7844},
                             {"protocol": "TCP", "port": 443}]
    ipv4 = edge["to"][0]["ipBlock"]
    assert ipv4["cidr"] == "0.0.0.0/0"
    assert "10.0.0.0/8" in ipv4["except"] and "192.168.0.0/16" in ipv4["except"]
    [gateway] = find(docs, "NetworkPolicy", "allow-gateway")["spec"]["egress"]
    assert gateway["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kong"}}}]
    assert [p["port"] for p in gateway["ports"]] == [8000, 8443]
    [metrics] = find(docs, "NetworkPolicy", "allow-metrics")["spec"]["ingress"]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 2000}]


def test_cluster_networks_outside_private_ranges_are_not_internet(production):
    production[0]["plinth_service_cidr"] = "198.18.0.0/15"
    docs = _manifests(production)
    [edge] = find(docs, "NetworkPolicy", "allow-cloudflare-edge")["spec"]["egress"]
    assert "198.18.0.0/15" in edge["to"][0]["ipBlock"]["except"]


def test_without_gateway_or_monitoring_their_rules_go(production):
    production[0]["plinth_apps"] = []  # their ingress needs Kong
    docs = manifests_of(build(production, kong={"enabled": False}, monitoring={"enabled": False}), "cloudflared")
    assert names_of(docs, "NetworkPolicy") == ["allow-cloudflare-edge", "allow-dns", "default-deny"]
    assert names_of(docs, "PodMonitor") == []


def test_pod_monitor_scrapes_the_metrics_port(production):
    monitor = find(_manifests(production), "PodMonitor", "cloudflared")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "cloudflared"}}


# --- cross-checks ------------------------------------------------------------------

def test_replicas_must_fit_the_pool(production):
    assert ("plinth_components.cloudflared.replicas: got 4; 4 replicas need 4 hosts in pool 'worker' "
            "(group workers has 3)") in spec_errors(production, cloudflared={"replicas": 4})


def test_latest_image_is_rejected(production):
    assert ("plinth_components.cloudflared.image.tag: got 'latest'; pin a concrete cloudflared version "
            "(e.g. 2026.8.2), not 'latest'") in spec_errors(production, cloudflared={"image": {"tag": "latest"}})


def test_needs_external_secrets(production):
    errors = spec_errors(production, external_secrets={"enabled": False})
    assert ("plinth_components.cloudflared.enabled: got True; needs plinth_components.external_secrets.enabled: "
            "true (the tunnel token comes from Vault through an ExternalSecret)") in errors


def test_bad_vault_path_is_rejected(production):
    errors = spec_errors(production, cloudflared={"token_vault_path": "/platform/cloudflared/"})
    assert ("plinth_components.cloudflared.token_vault_path: got '/platform/cloudflared/'; must be a Vault KV "
            "path like platform/cloudflared (no leading or trailing '/')") in errors

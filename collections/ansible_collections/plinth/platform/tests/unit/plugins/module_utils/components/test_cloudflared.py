# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cloudflare Tunnel manifests: hardening, token reference, placement, network policies, checks."""

from __future__ import absolute_import, annotations, division, print_function

import copy

import pytest
import yaml

from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, find, manifests_of, names_of, network_policy, of_kind, options, spec_errors, taint_workers)

__metaclass__ = type

WAVE = "argocd.argoproj.io/sync-wave"


def _manifests(inventory, **options):
    return manifests_of(build(inventory, cloudflared=options), "cloudflared")


def _remote(inventory):
    """The inventory with the tunnel remotely managed, cloudflared's default: no mode, tunnel or ingress."""
    for key in ("mode", "tunnel", "ingress"):
        options(inventory, "cloudflared").pop(key, None)
    return inventory


def _pod(docs):
    return find(docs, "Deployment")["spec"]["template"]["spec"]


# --- workload ------------------------------------------------------------------------

def test_runs_the_remotely_managed_tunnel_with_metrics(production):
    docs = _manifests(_remote(production))
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
    docs = _manifests(_remote(production))
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
    secret = find(_manifests(_remote(production), token_vault_path="edge/tunnels/prod"), "ExternalSecret")
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
    _remote(production)  # so would the tunnel's own routes
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


def test_token_refresh_option(production):
    docs = _manifests(production)
    assert find(docs, "ExternalSecret")["spec"]["refreshInterval"] == "1h"
    docs = _manifests(production, refresh="15m")
    assert find(docs, "ExternalSecret")["spec"]["refreshInterval"] == "15m"


def test_bad_token_refresh_is_rejected(production):
    errors = spec_errors(production, cloudflared={"refresh": "1d"})
    assert ("plinth_components.cloudflared.refresh: got '1d'; must be a positive duration in h, m, s or ms, "
            "like 1h, 30m or 1h30m (no d or w)") in errors


# --- locally managed tunnel ---------------------------------------------------------------

TUNNEL = "6ff42ae2-765d-4adf-8112-31c55c1551ef"
RULES = [
    {"hostname": "shop.example.com"},
    {"hostname": "*.example.com", "path": "^/api/"},
    {"hostname": "legacy.example.com", "service": "http://legacy.old-shop.svc:8080"},
]


def _local(production, **options):
    return _manifests(production, **dict({"mode": "local", "tunnel": TUNNEL, "ingress": RULES}, **options))


def _config(docs):
    return yaml.safe_load(find(docs, "ConfigMap", "cloudflared-config")["data"]["config.yaml"])


def test_local_config_routes_to_kong_then_answers_404(production):
    config = _config(_local(production))
    assert config == {
        "tunnel": TUNNEL,
        "credentials-file": "/etc/cloudflared-credentials/credentials.json",
        "ingress": [
            {"hostname": "shop.example.com", "service": "http://kong-kong-proxy.kong.svc:80"},
            {"hostname": "*.example.com", "path": "^/api/", "service": "http://kong-kong-proxy.kong.svc:80"},
            {"hostname": "legacy.example.com", "service": "http://legacy.old-shop.svc:8080"},
            {"service": "http_status:404"},
        ],
    }


def test_local_pods_run_the_config_with_read_only_credentials(production):
    docs = _local(production)
    pod = _pod(docs)
    [container] = pod["containers"]
    assert container["command"] == ["cloudflared", "tunnel", "--no-autoupdate", "--metrics", "0.0.0.0:2000",
                                    "--config", "/etc/cloudflared/config.yaml", "run"]
    assert "env" not in container
    mounts = dict((m["name"], m) for m in container["volumeMounts"])
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/cloudflared", "readOnly": True}
    assert mounts["credentials"] == {"name": "credentials", "mountPath": "/etc/cloudflared-credentials",
                                     "readOnly": True}
    volumes = dict((v["name"], v) for v in pod["volumes"])
    assert volumes["config"]["configMap"] == {"name": "cloudflared-config"}
    assert volumes["credentials"]["secret"] == {"secretName": "cloudflared-credentials", "defaultMode": 0o440}
    assert pod["securityContext"]["fsGroup"] == 65532
    assert names_of(docs, "ExternalSecret") == ["cloudflared-credentials"]


def test_local_credentials_file_is_built_from_vault_properties(production):
    secret = find(_local(production, credentials_vault_path="platform/tunnel"), "ExternalSecret")
    assert secret["metadata"]["annotations"][WAVE] == "-1"
    assert secret["spec"]["target"]["name"] == "cloudflared-credentials"
    assert [(d["secretKey"], d["remoteRef"]) for d in secret["spec"]["data"]] == [
        (prop, {"key": "platform/tunnel", "property": prop}) for prop in ("AccountTag", "TunnelID", "TunnelSecret")]
    template = secret["spec"]["target"]["template"]
    assert template["engineVersion"] == "v2"
    assert template["data"] == {"credentials.json": '{"AccountTag":"{{ .AccountTag }}",'
                                                    '"TunnelID":"{{ .TunnelID }}",'
                                                    '"TunnelSecret":"{{ .TunnelSecret }}"}'}


def test_a_config_change_rolls_the_pods(production):
    first = _pod_template(_local(copy.deepcopy(production)))
    same = _pod_template(_local(copy.deepcopy(production)))
    changed = _pod_template(_local(production, ingress=RULES[:1]))
    key = "plinth.io/config-checksum"
    assert first["metadata"]["annotations"][key] == same["metadata"]["annotations"][key]
    assert first["metadata"]["annotations"][key] != changed["metadata"]["annotations"][key]


def _pod_template(docs):
    return find(docs, "Deployment")["spec"]["template"]


def test_remote_mode_has_no_config_or_checksum(production):
    docs = _manifests(_remote(production))
    assert names_of(docs, "ConfigMap") == []
    assert "annotations" not in _pod_template(docs)["metadata"]
    assert "fsGroup" not in _pod(docs)["securityContext"]


def test_local_origins_outside_kong_are_reachable(production):
    docs = _local(production)
    rule = network_policy(docs, "allow-origins")["egress"][0]
    assert rule == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "old-shop"}}}]}
    assert "allow-origins" not in names_of(_local(production, ingress=RULES[:2]), "NetworkPolicy")


def test_local_mode_needs_a_tunnel_and_rules(production):
    errors = spec_errors(_remote(production), cloudflared={"mode": "local"})
    assert ("plinth_components.cloudflared.tunnel: got None; mode: local needs the tunnel's UUID or name") in errors
    assert ("plinth_components.cloudflared.ingress: got []; mode: local needs at least one rule "
            "(anything else answers 404)") in errors


def test_remote_mode_rejects_local_settings(production):
    errors = spec_errors(_remote(production), cloudflared={"tunnel": TUNNEL, "ingress": RULES[:1]})
    assert any(e.startswith("plinth_components.cloudflared.tunnel: got '%s'; is used only with mode: local"
                            % TUNNEL) for e in errors)
    assert any(e.startswith("plinth_components.cloudflared.ingress: got ") for e in errors)


@pytest.mark.parametrize("hostname", ["shop.*.example.com", "*shop.example.com", "Shop_.example.com", "*", ""])
def test_bad_hostnames_are_rejected(production, hostname):
    errors = spec_errors(production, cloudflared={"mode": "local", "tunnel": TUNNEL,
                                                  "ingress": [{"hostname": hostname}]})
    assert ("plinth_components.cloudflared.ingress[0].hostname: got %r; must be a host name like shop.example.com, "
            "or '*.' followed by one (cloudflared's only wildcard)" % hostname) in errors


@pytest.mark.parametrize("service", ["kong.kong.svc:80", "http://web.shop.svc:8080/path", "ftp://x.example.com",
                                     "http://web.shop.svc:99999", "http_status:99"])
def test_bad_origins_are_rejected(production, service):
    errors = spec_errors(production, cloudflared={"mode": "local", "tunnel": TUNNEL,
                                                  "ingress": [{"hostname": "a.example.com", "service": service}]})
    assert any(e.startswith("plinth_components.cloudflared.ingress[0].service: got %r; must be an origin" % service)
               for e in errors), errors


@pytest.mark.parametrize("service", ["https://web.shop.svc:8443", "tcp://10.0.0.5:22", "http_status:503",
                                     "http://[fd00::1]:80"])
def test_good_origins_are_accepted(production, service):
    config = _config(_local(production, ingress=[{"hostname": "a.example.com", "service": service}]))
    assert config["ingress"][0]["service"] == service


def test_duplicate_rules_are_rejected(production):
    rules = [{"hostname": "shop.example.com"}, {"hostname": "Shop.example.com"},
             {"hostname": "shop.example.com", "path": "^/api"}]
    errors = spec_errors(production, cloudflared={"mode": "local", "tunnel": TUNNEL, "ingress": rules})
    assert ("plinth_components.cloudflared.ingress[1].hostname: got 'Shop.example.com'; the same host name and path "
            "as ingress[0]: cloudflared uses the first matching rule, so this one would never match") in errors
    assert not any("ingress[2]" in e for e in errors)


def test_bad_path_and_tunnel_are_rejected(production):
    errors = spec_errors(production, cloudflared={"mode": "local", "tunnel": "not a tunnel",
                                                  "ingress": [{"hostname": "a.example.com", "path": "(["}]})
    assert ("plinth_components.cloudflared.tunnel: got 'not a tunnel'; must be the tunnel's UUID (lower-case) "
            "or its name") in errors
    assert any(e.startswith("plinth_components.cloudflared.ingress[0].path: got '(['; must be a regular expression")
               for e in errors)


def test_default_origin_needs_kong(production):
    errors = spec_errors(production, kong={"enabled": False},
                         cloudflared={"mode": "local", "tunnel": TUNNEL, "ingress": [{"hostname": "a.example.com"}]})
    assert ("plinth_components.cloudflared.ingress[0].service: got None; defaults to Kong's proxy Service, but "
            "plinth_components.kong.enabled is false: name an origin") in errors

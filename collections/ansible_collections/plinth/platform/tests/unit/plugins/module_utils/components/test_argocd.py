# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Argo CD: HA layout, placement, the Application health check, no credentials, cross-checks."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import argocd
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, check_errors, keys, manifests_of, names_of, network_policy, spec_errors, taint_workers, values_of)

__metaclass__ = type

HEALTH_KEY = "resource.customizations.health.argoproj.io_Application"
SCALED = ("server", "repoServer", "applicationSet")


def _values(inventory, **argocd):
    return values_of(build(inventory, argocd=argocd), "argocd")


def _check_with_two_workers(inventory, **argocd):
    """Argo CD's own check on a worker pool shrunk to 2 hosts (other components would object too)."""
    spec = build(inventory, argocd=argocd)
    spec["node_pools"]["worker"]["hosts"] = spec["node_pools"]["worker"]["hosts"][:2]
    return check_errors(spec, "argocd")


# --- HA layout ---------------------------------------------------------------------

def test_ha_runs_redis_ha_and_two_of_each_stateless_part(production):
    values = _values(production)
    assert values["redis-ha"]["enabled"] is True
    assert values["redis"] == {"enabled": False}
    for part in SCALED:
        assert values[part]["replicas"] == 2, part
        assert values[part]["pdb"] == {"enabled": True, "minAvailable": 1}, part
    # One controller: more replicas shard clusters, and this platform manages one.
    assert values["controller"]["replicas"] == 1
    assert values["controller"]["pdb"] == {"enabled": False}


def test_redis_ha_keeps_one_server_per_host_with_budgets(production):
    redis_ha = _values(production)["redis-ha"]
    assert redis_ha["hardAntiAffinity"] is True
    assert redis_ha["haproxy"]["hardAntiAffinity"] is True
    assert redis_ha["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert redis_ha["haproxy"]["podDisruptionBudget"] == {"maxUnavailable": 1}


def test_ha_spreads_every_part_over_hosts(production):
    [spread] = _values(production)["global"]["topologySpreadConstraints"]
    assert spread == {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}


def test_more_replicas_raise_the_disruption_budget(production):
    values = _values(production, replicas=3)
    for part in SCALED:
        assert values[part]["replicas"] == 3
        assert values[part]["pdb"]["minAvailable"] == 2


def test_sharded_controller_gets_a_budget(production):
    controller = _values(production, controller_replicas=2)["controller"]
    assert controller["replicas"] == 2
    assert controller["pdb"] == {"enabled": True, "minAvailable": 1}


def test_without_ha_single_redis_and_single_replicas(production):
    values = _values(production, ha=False)
    assert values["redis"]["enabled"] is True
    assert values["redis-ha"] == {"enabled": False}
    for part in SCALED:
        assert values[part]["replicas"] == 1
        assert values[part]["pdb"] == {"enabled": False}
    assert "topologySpreadConstraints" not in values["global"]


# --- placement -----------------------------------------------------------------------

def test_every_part_runs_on_the_worker_pool(production):
    values = _values(production)
    assert values["global"]["nodeSelector"] == {"node.role": "worker"}
    assert values["global"]["tolerations"] == []
    assert values["redis-ha"]["nodeSelector"] == {"node.role": "worker"}
    for part in ("controller", "server", "repoServer", "applicationSet", "dex", "redis"):
        assert "nodeSelector" not in values[part], "a component key would replace the global one"


def test_tainted_pool_is_tolerated_everywhere(production):
    taint_workers(production, "apps", labels={"pool": "apps"})
    values = values_of(build(production, consul={"gossip_encryption": "none"}), "argocd")
    toleration = {"key": "dedicated", "operator": "Equal", "value": "apps", "effect": "NoSchedule"}
    assert values["global"]["nodeSelector"] == {"pool": "apps"}
    assert values["global"]["tolerations"] == [toleration]
    assert values["redis-ha"]["nodeSelector"] == {"pool": "apps"}
    assert values["redis-ha"]["tolerations"] == [toleration]


# --- configuration -------------------------------------------------------------------

def test_application_health_check_lets_sync_waves_wait(production):
    lua = _values(production)["configs"]["cm"][HEALTH_KEY]
    assert "obj.status.health.status" in lua
    assert '"Progressing"' in lua
    assert lua.rstrip().endswith("return result")


def test_server_is_plain_http_behind_the_gateway_by_default(production):
    assert _values(production)["configs"]["params"]["server.insecure"] is True
    assert _values(production, server_insecure=False)["configs"]["params"]["server.insecure"] is False


def test_resource_health_is_kept_in_the_application_for_the_convergence_stage(production):
    assert _values(production)["configs"]["params"]["controller.resource.health.persist"] is True


def test_domain_and_dex_options(production):
    values = _values(production)
    assert "domain" not in values["global"]
    assert values["dex"]["enabled"] is False
    values = _values(production, domain="cd.example.com", dex=True)
    assert values["global"]["domain"] == "cd.example.com"
    assert values["dex"]["enabled"] is True


def test_no_repository_or_credential_in_values(production):
    values = _values(production)
    configs = values["configs"]
    for key in ("repositories", "credentialTemplates", "clusterCredentials", "secret"):
        assert key not in configs
    secretish = [k for k in keys(values) if any(w in k.lower() for w in ("password", "privatekey", "token"))]
    assert secretish == []


MONITORED = ("controller", "notifications", "dex") + SCALED


def test_metrics_follow_monitoring(production):
    values = _values(production)
    for part in MONITORED:
        assert values[part]["metrics"] == {"enabled": True, "serviceMonitor": {"enabled": True}}, part
    values = values_of(build(production, monitoring={"enabled": False}), "argocd")
    for part in MONITORED:
        assert values[part]["metrics"] == {"enabled": False, "serviceMonitor": {"enabled": False}}, part


def test_redis_ha_exporter_and_haproxy_are_monitored(production):
    redis_ha = _values(production)["redis-ha"]
    assert redis_ha["exporter"] == {"enabled": True, "serviceMonitor": {"enabled": True}}
    assert redis_ha["haproxy"]["metrics"] == {"enabled": True, "serviceMonitor": {"enabled": True}}
    redis_ha = values_of(build(production, monitoring={"enabled": False}), "argocd")["redis-ha"]
    assert redis_ha["exporter"] == {"enabled": False, "serviceMonitor": {"enabled": False}}
    assert redis_ha["haproxy"]["metrics"]["serviceMonitor"] == {"enabled": False}


def test_single_redis_exporter_is_monitored(production):
    assert _values(production, ha=False)["redis"] == {
        "enabled": True, "exporter": {"enabled": True},
        "metrics": {"enabled": True, "serviceMonitor": {"enabled": True}}}


# --- NetworkPolicies ---------------------------------------------------------------

def _policies(inventory, **components):
    return manifests_of(build(inventory, **components), "argocd")


def _ports(rule):
    return sorted(p["port"] for p in rule["ports"])


def test_namespace_denies_by_default_and_resolves_names(production):
    docs = _policies(production)
    assert network_policy(docs, "default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert network_policy(docs, "allow-dns")["egress"][0]["to"][0]["podSelector"] == {
        "matchLabels": {"k8s-app": "kube-dns"}}
    assert all(d["metadata"]["namespace"] == "argocd" for d in docs)


def test_argocd_reaches_the_api_server(production):
    policy = network_policy(_policies(production), "allow-apiserver")
    assert policy["podSelector"] == {}
    assert {"ipBlock": {"cidr": "192.0.2.11/32"}} in policy["egress"][0]["to"]


def test_argocd_pods_talk_among_themselves_only(production):
    policy = network_policy(_policies(production), "allow-argocd")
    assert policy["ingress"] == [{"from": [{"podSelector": {}}]}]
    assert policy["egress"] == [{"to": [{"podSelector": {}}]}]


def test_server_ui_is_open_to_the_cluster(production):
    policy = network_policy(_policies(production), "allow-server")
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "argocd-server",
                                                     "app.kubernetes.io/instance": "argo-cd"}}
    assert policy["ingress"] == [{"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 8080}]}]


def test_repo_server_reaches_git_and_helm_repositories_anywhere(production):
    policy = network_policy(_policies(production), "allow-repositories")
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "argocd-repo-server"
    [rule] = policy["egress"]
    assert "to" not in rule
    assert _ports(rule) == [22, 443]


def test_repository_ports_follow_the_urls(production):
    production[0]["plinth_gitops"]["repo_url"] = "ssh://git@git.example.com:2222/platform/gitops.git"
    production[0]["plinth_chart_mirror"] = "https://charts.example.com:8443/mirror"
    production[0]["plinth_apps"][0]["chart"]["repo"] = "http://charts.internal:8080/acme"
    rule = network_policy(_policies(production), "allow-repositories")["egress"][0]
    assert _ports(rule) == [22, 443, 2222, 8080, 8443]


@pytest.mark.parametrize("url, port", [
    ("https://git.example.com/a.git", 443), ("http://git.example.com/a.git", 80),
    ("git@git.example.com:org/a.git", 22), ("ssh://git@host:2222/a.git", 2222), ("git://host/a.git", 9418),
    ("oci://registry.example.com/charts", 443), ("https://[2001:db8::1]:8443/a", 8443),
    ("./charts/app", None), ("file:///srv/gitops", None), ("/srv/gitops", None),
])
def test_url_port(url, port):
    assert argocd.url_port(url) == port


def test_dex_reaches_identity_providers_only_when_enabled(production):
    assert "allow-identity-providers" not in names_of(_policies(production), "NetworkPolicy")
    policy = network_policy(_policies(production, argocd={"dex": True}), "allow-identity-providers")
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "argocd-dex-server"
    assert _ports(policy["egress"][0]) == [443]


def test_notifications_reach_their_services(production):
    policy = network_policy(_policies(production), "allow-notification-services")
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "argocd-notifications-controller"
    assert _ports(policy["egress"][0]) == [443]


def test_prometheus_scrapes_every_metrics_port(production):
    policy = network_policy(_policies(production), "allow-metrics")
    [rule] = policy["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert _ports(rule) == [5558, 8080, 8082, 8083, 8084, 9001, 9101, 9121]
    docs = _policies(production, monitoring={"enabled": False})
    assert "allow-metrics" not in names_of(docs, "NetworkPolicy")


# --- cross-checks ------------------------------------------------------------------

def test_redis_ha_needs_three_pool_hosts(production):
    assert _check_with_two_workers(production) == [
        "plinth_components.argocd.ha: got True; redis-ha runs 3 Redis servers with hard anti-affinity "
        "(one per host) and needs 3 hosts in pool 'worker' (group workers has 2); set ha: false or add hosts"]


def test_without_ha_two_workers_are_enough(production):
    assert _check_with_two_workers(production, ha=False) == []


def test_replicas_must_fit_the_pool(production):
    assert ("plinth_components.argocd.replicas: got 4; 4 replicas need 4 hosts in pool 'worker' "
            "(group workers has 3)") in spec_errors(production, argocd={"replicas": 4})


def test_ha_needs_two_replicas(production):
    errors = spec_errors(production, argocd={"replicas": 1})
    assert "plinth_components.argocd.replicas: got 1; ha needs at least 2 replicas" in errors


def test_bad_domain_is_rejected(production):
    errors = spec_errors(production, argocd={"domain": "Not A Host"})
    assert any(e.startswith("plinth_components.argocd.domain: got 'Not A Host'; must be a DNS subdomain")
               for e in errors)

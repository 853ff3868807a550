# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Argo CD: HA layout, placement, the Application health check, no credentials, cross-checks."""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, check_errors, keys, spec_errors, taint_workers, values_of)

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
    assert values["redis"] == {"enabled": True}
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
    assert values["dex"] == {"enabled": False}
    values = _values(production, domain="cd.example.com", dex=True)
    assert values["global"]["domain"] == "cd.example.com"
    assert values["dex"] == {"enabled": True}


def test_no_repository_or_credential_in_values(production):
    values = _values(production)
    configs = values["configs"]
    for key in ("repositories", "credentialTemplates", "clusterCredentials", "secret"):
        assert key not in configs
    secretish = [k for k in keys(values) if any(w in k.lower() for w in ("password", "privatekey", "token"))]
    assert secretish == []


def test_metrics_follow_monitoring(production):
    values = _values(production)
    for part in ("controller",) + SCALED:
        assert values[part]["metrics"] == {"enabled": True, "serviceMonitor": {"enabled": True}}
    values = values_of(build(production, monitoring={"enabled": False}), "argocd")
    for part in ("controller",) + SCALED:
        assert values[part]["metrics"] == {"enabled": False, "serviceMonitor": {"enabled": False}}


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

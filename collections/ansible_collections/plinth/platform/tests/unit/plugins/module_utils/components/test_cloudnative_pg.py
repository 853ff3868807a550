# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""CloudNativePG operator: placement, HA, monitoring and Argo CD settings."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import cloudnative_pg
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

__metaclass__ = type

SELECTOR = {"app.kubernetes.io/name": "cloudnative-pg", "app.kubernetes.io/instance": "cloudnative-pg"}


def _settings(variables):
    return variables["plinth_components"].setdefault("cloudnative_pg", {})


def _render(inventory):
    spec = build_spec(*inventory)
    settings = spec["components"]["cloudnative_pg"]
    return cloudnative_pg.values(spec, settings), cloudnative_pg.manifests(spec, settings)


def test_operator_runs_on_the_worker_pool_spread_over_hosts(production):
    values, _docs = _render(production)
    assert values["replicaCount"] == 2
    assert values["nodeSelector"] == {"node.role": "worker"}
    assert values["tolerations"] == []
    [spread] = values["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["labelSelector"]["matchLabels"] == SELECTOR


def test_operator_watches_all_namespaces_and_owns_its_crds(production):
    values, _docs = _render(production)
    assert values["crds"] == {"create": True}
    assert values["config"]["clusterWide"] is True


def test_operator_follows_its_pool(production):
    production[0]["plinth_node_pools"]["worker"]["labels"] = {"role": "platform"}
    production[0]["plinth_node_pools"]["storage"]["taints"].append(
        {"key": "extra", "value": "", "effect": "PreferNoSchedule"})
    _settings(production[0])["pool"] = "storage"
    values, _docs = _render(production)
    assert values["nodeSelector"] == {"node.ceph.storage": "true"}
    assert values["tolerations"] == [
        {"key": "node.ceph.storage", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        {"key": "extra", "operator": "Equal", "value": "", "effect": "PreferNoSchedule"},
    ]


def test_pod_disruption_budget_for_the_operator(production):
    _values, docs = _render(production)
    [pdb] = docs
    assert pdb["kind"] == "PodDisruptionBudget"
    assert pdb["metadata"]["namespace"] == "cnpg-system"
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": SELECTOR}}


def test_single_replica_has_no_budget(production):
    _settings(production[0])["replicas"] = 1
    values, docs = _render(production)
    assert values["replicaCount"] == 1
    assert docs == []


def test_pod_monitor_only_with_monitoring(production):
    values, _docs = _render(production)
    assert values["monitoring"]["podMonitorEnabled"] is True
    production[0]["plinth_components"]["monitoring"]["enabled"] = False
    values, _docs = _render(production)
    assert values["monitoring"]["podMonitorEnabled"] is False


def test_argo_cd_settings():
    [release] = cloudnative_pg.COMPONENT.releases
    # The Cluster and Pooler CRDs are too large for client-side apply.
    assert release.server_side_apply is True
    kinds = sorted(d["kind"] for d in release.ignore_differences)
    assert kinds == ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
    assert all(d["jqPathExpressions"] == [".webhooks[]?.clientConfig.caBundle"]
               for d in release.ignore_differences)


def test_replicas_must_fit_the_pool(production):
    _settings(production[0])["replicas"] = 4
    with pytest.raises(SpecError) as info:
        build_spec(*production)
    assert ("plinth_components.cloudnative_pg.replicas: got 4; 4 replicas need 4 hosts in pool 'worker' "
            "(group workers has 3)") in info.value.errors


def test_disabled_operator_is_not_checked(production):
    production[0]["plinth_components"]["kong"]["database"] = {"mode": "external", "host": "192.0.2.50"}
    _settings(production[0]).update({"enabled": False, "replicas": 9})
    build_spec(*production)

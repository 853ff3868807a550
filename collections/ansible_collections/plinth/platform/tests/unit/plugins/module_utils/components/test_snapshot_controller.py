# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""CSI snapshot controller: CRDs, HA, placement, sync order, metrics and network policies."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import monitoring, rook_ceph
from ansible_collections.plinth.platform.plugins.module_utils.components import snapshot_controller
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, manifests_of, names_of, network_policy, spec_errors, values_of)

__metaclass__ = type

SELECTOR = {"app.kubernetes.io/name": "snapshot-controller", "app.kubernetes.io/instance": "snapshot-controller"}


def _render(inventory, **changes):
    spec = build(inventory, snapshot_controller=changes)
    return values_of(spec, "snapshot_controller"), manifests_of(spec, "snapshot_controller")


def test_enabled_by_default_in_its_own_namespace(production):
    settings = build(production)["components"]["snapshot_controller"]
    assert settings["enabled"] is True
    assert settings["namespace"] == "snapshot-controller"
    assert snapshot_controller.COMPONENT.project == "infra"
    assert snapshot_controller.COMPONENT.pod_security == "restricted"


def test_installs_the_crds_without_the_conversion_webhook(production):
    values, _docs = _render(production)
    assert values["installCRDs"] is True
    assert values["webhook"] == {"enabled": False}
    # Rook declares the class beside its StorageClass; the chart makes none.
    assert values["volumeSnapshotClasses"] == [] and values["volumeGroupSnapshotClasses"] == []


def test_two_replicas_spread_over_workers_with_a_budget(production):
    controller = _render(production)[0]["controller"]
    assert controller["replicaCount"] == 2
    assert controller["pdb"] == {"minAvailable": 1}
    [spread] = controller["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == SELECTOR
    assert controller["nodeSelector"] == {"node.role": "worker"}
    assert controller["tolerations"] == []


def test_one_replica_has_no_budget_and_no_spread(production):
    controller = _render(production, replicas=1)[0]["controller"]
    assert controller["replicaCount"] == 1
    assert controller["pdb"] == {}
    assert controller["topologySpreadConstraints"] == []


def test_follows_another_pool(production):
    controller = _render(production, pool="gateway", replicas=3)[0]["controller"]
    assert controller["nodeSelector"] == {"node.kong.gateway": "true"}
    assert controller["tolerations"] == [
        {"key": "node.kong.gateway", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    assert controller["pdb"] == {"minAvailable": 2}


def test_meets_restricted_pod_security(production):
    controller = _render(production)[0]["controller"]
    assert controller["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = controller["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["runAsNonRoot"] is True


def test_resources_follow_the_inventory(production):
    controller = _render(production, resources={"limits": {"memory": "512Mi"}})[0]["controller"]
    assert controller["resources"]["limits"] == {"cpu": "200m", "memory": "512Mi"}
    assert controller["resources"]["requests"] == {"cpu": "10m", "memory": "64Mi"}


def test_service_monitor_follows_monitoring(production):
    assert _render(production)[0]["controller"]["serviceMonitor"] == {"create": True}
    values = values_of(build(production, monitoring={"enabled": False}), "snapshot_controller")
    assert values["controller"]["serviceMonitor"] == {"create": False}


def test_syncs_after_the_monitor_crds_and_before_the_snapshot_class():
    [release] = snapshot_controller.COMPONENT.releases
    crds = [r for r in monitoring.COMPONENT.releases if r.name == "prometheus-operator-crds"][0]
    cluster = [r for r in rook_ceph.COMPONENT.releases if r.name == "rook-ceph-cluster"][0]
    assert crds.wave < release.wave < cluster.wave


def test_chart_is_pinned():
    [release] = snapshot_controller.COMPONENT.releases
    assert release.chart == {"repo": "https://piraeus.io/helm-charts/", "name": "snapshot-controller",
                             "version": "5.2.0"}


def test_namespace_denies_all_but_dns_api_and_metrics(production):
    _values, docs = _render(production)
    assert names_of(docs, "NetworkPolicy") == ["allow-apiserver", "allow-dns", "allow-metrics", "default-deny"]
    assert all(d["metadata"]["namespace"] == "snapshot-controller" for d in docs)
    metrics = network_policy(docs, "allow-metrics")
    assert metrics["podSelector"] == {"matchLabels": SELECTOR}
    [rule] = metrics["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_no_metrics_opening_without_monitoring(production):
    docs = manifests_of(build(production, monitoring={"enabled": False}), "snapshot_controller")
    assert names_of(docs, "NetworkPolicy") == ["allow-apiserver", "allow-dns", "default-deny"]


def test_replicas_must_fit_the_pool(production):
    assert ("plinth_components.snapshot_controller.replicas: got 4; 4 replicas need 4 hosts in pool 'worker' "
            "(group workers has 3)") in spec_errors(production, snapshot_controller={"replicas": 4})


@pytest.mark.parametrize("option, value, rule", [
    ("replicas", 0, "must be at least 1"),
    ("enabled", "yes", "must be true or false"),
])
def test_bad_values_are_named_with_their_rule(production, option, value, rule):
    errors = spec_errors(production, snapshot_controller={option: value})
    assert "plinth_components.snapshot_controller.%s: got %r; %s" % (option, value, rule) in errors

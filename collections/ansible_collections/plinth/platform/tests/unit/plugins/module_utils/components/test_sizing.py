# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Sizing: every platform workload gets requests and limits, overridable per environment and validated."""

from __future__ import absolute_import, annotations, division, print_function

import copy

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import (
    argocd, registry, rook_ceph, sizing, vault)
from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, find, manifests_of, spec_errors, values_of)

__metaclass__ = type

# Kinds of raw manifest that run pods: a release rendering one needs workloads in the table.
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Cluster")

# Every workload that only runs when asked for, switched on.
ALL_ON = {
    "cilium": {"hubble": True, "hubble_ui": True},
    "argocd": {"dex": True},
    "rook_ceph": {"toolbox": True, "filesystem": True, "object_store": True},
    "vault": {"injector": True},
    "logging": {"enabled": True},
    "reloader": {"enabled": True},
}

# A smaller staging: what the staging inventory is advised to set.
STAGING = {
    "cilium": {"resources": {"agent": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}}},
    "argocd": {"resources": {
        "controller": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "repo_server": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}},
    }},
    "monitoring": {"resources": {
        "prometheus": {"requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "grafana": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "kube_state_metrics": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    }},
    "rook_ceph": {"resources": {
        "mon": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "mgr": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "osd": {"requests": {"cpu": "250m", "memory": "2Gi"}, "limits": {"memory": "2Gi"}},
    }},
}


def _at(values, path):
    for key in path.split("."):
        values = values[key]
    return values


def _chart_values(spec):
    """(component, release, settings, values) of every enabled chart release, as the tree writes them."""
    tree = gitops.documents(spec)
    return [(component, release, settings, tree["infra/%s/values-%s.yaml" % (release.name, spec["environment"])][0])
            for component, release, settings in gitops.releases(spec) if release.chart is not None]


def _merged(*overrides):
    found = {}
    for override in overrides:
        for key, options in override.items():
            found.setdefault(key, {}).update(copy.deepcopy(options))
    return found


def test_every_chart_release_has_a_table_entry():
    missing = [r.name for c in registry() for r in c.releases if r.chart is not None and r.name not in sizing.TABLE]
    assert missing == [], "add these releases to sizing.TABLE (an empty list when they run no pods)"


def test_every_release_that_runs_pods_has_workloads(production):
    spec = build(production, **copy.deepcopy(ALL_ON))
    for component in registry():
        if not spec["components"][component.key]["enabled"]:
            continue
        for release in component.releases:
            docs = release.manifests(spec, spec["components"][component.key]) if release.manifests else []
            if any(d["kind"] in POD_KINDS for d in docs):
                assert sizing.TABLE.get(release.name), release.name


def test_pod_counts_the_table_copies_match_their_modules():
    assert sizing.REDIS_HA_PODS == argocd.REDIS_HA_PODS
    assert sizing.VAULT_INJECTOR_REPLICAS == vault.INJECTOR_REPLICAS
    assert sizing.CSI_CONTROLLER_REPLICAS == rook_ceph.CSI_CONTROLLER_REPLICAS


def test_table_names_are_unique_per_component():
    for component in registry():
        names = [w.name for w in sizing.workloads(component)]
        assert len(names) == len(set(names)), component.key


@pytest.mark.parametrize("options", [{}, ALL_ON, {"argocd": {"ha": False}}], ids=["production", "all-on", "no-ha"])
def test_every_workload_of_the_render_has_resources(production, options):
    spec = build(production, **copy.deepcopy(options))
    checked = set()
    for _component, release, settings, values in _chart_values(spec):
        for workload in sizing.TABLE[release.name]:
            if not workload.active(settings):
                continue
            for path in workload.paths:
                found = _at(values, path)
                assert found["requests"]["cpu"] and found["requests"]["memory"], (release.name, path)
                assert found["limits"]["memory"], (release.name, path)
                checked.add((release.name, workload.name))
    if options is ALL_ON:
        everything = set((name, w.name) for name, table in sizing.TABLE.items() for w in table if w.paths)
        assert everything - checked == {("argo-cd", "redis")}  # the single Redis runs only without ha: no-ha


def test_defaults_have_memory_limits_and_no_cpu_limits(production):
    spec = build(production)
    built = values_of(spec, "monitoring", "kube-prometheus-stack")
    written = gitops.documents(spec)["infra/kube-prometheus-stack/values-production.yaml"][0]
    assert "resources" not in built["prometheus"]["prometheusSpec"]  # the component sets none itself
    assert written["prometheus"]["prometheusSpec"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    assert written["grafana"]["sidecar"]["resources"]["limits"] == {"memory": "256Mi"}


def test_bootstrap_install_gets_the_same_values_as_the_tree(production):
    spec = build(production)
    installed = gitops.helm_release(spec, "argo-cd")["values"]
    written = gitops.documents(spec)["infra/argo-cd/values-production.yaml"][0]
    assert installed == written
    assert installed["redis-ha"]["haproxy"]["resources"]["requests"] == {"cpu": "50m", "memory": "64Mi"}


def test_a_component_keeps_its_own_resources(production):
    spec = build(production, consul={"resources": {"requests": {"cpu": "300m", "memory": "1Gi"},
                                                   "limits": {"cpu": "2", "memory": "2Gi"}}})
    values = gitops.documents(spec)["infra/consul/values-production.yaml"][0]
    assert values["server"]["resources"] == {"requests": {"cpu": "300m", "memory": "1Gi"},
                                             "limits": {"cpu": "2", "memory": "2Gi"}}


def test_values_set_by_a_component_are_not_clobbered(production):
    spec = build(production)
    [release] = [r for c in registry() if c.key == "metrics_server" for r in c.releases]
    own = {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
    assert sizing.sized(spec, release, spec["components"]["metrics_server"], copy.deepcopy(own)) == own


def test_override_merges_over_the_default_key_by_key(production):
    spec = build(production, monitoring={"resources": {"prometheus": {"requests": {"memory": "3Gi"},
                                                                      "limits": {"cpu": "2"}}}})
    values = gitops.documents(spec)["infra/kube-prometheus-stack/values-production.yaml"][0]
    assert values["prometheus"]["prometheusSpec"]["resources"] == {
        "requests": {"cpu": "500m", "memory": "3Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    # The other workloads keep their defaults.
    assert values["alertmanager"]["alertmanagerSpec"]["resources"]["requests"] == {"cpu": "20m", "memory": "64Mi"}


def test_a_null_limit_sets_none(production):
    spec = build(production, metrics_server={"resources": {"metrics_server": {"limits": {"memory": None}}}})
    values = gitops.documents(spec)["infra/metrics-server/values-production.yaml"][0]
    assert values["resources"] == {"requests": {"cpu": "100m", "memory": "200Mi"}}


def test_request_above_limit_is_an_error(production):
    errors = spec_errors(production, monitoring={"resources": {"prometheus": {"requests": {"memory": "8Gi"}}}})
    assert errors == ["plinth_components.monitoring.resources.prometheus.requests.memory: got '8Gi'; must not "
                      "exceed the limit (plinth_components.monitoring.resources.prometheus.limits.memory: 4Gi)"]


def test_request_above_limit_of_a_components_own_option_is_an_error(production):
    errors = spec_errors(production, kong={"controller_resources": {"requests": {"cpu": "1"}}})
    assert errors == ["plinth_components.kong.controller_resources.requests.cpu: got '1'; must not exceed the "
                      "limit (plinth_components.kong.controller_resources.limits.cpu: 500m)"]


def test_unknown_workload_is_an_error_naming_the_known_ones(production):
    [error] = spec_errors(production, monitoring={"resources": {"promethues": {"requests": {"cpu": "1"}}}})
    assert error.startswith("plinth_components.monitoring.resources.promethues: unknown key (known keys: ")
    assert "prometheus" in error and "node_exporter" in error


def test_a_bad_quantity_is_an_error(production):
    [error] = spec_errors(production, argocd={"resources": {"server": {"requests": {"memory": "lots"}}}})
    assert error.startswith("plinth_components.argocd.resources.server.requests.memory: got 'lots'; "
                            "must be a Kubernetes quantity")


def test_components_with_their_own_resources_option_keep_its_shape(production):
    [error] = spec_errors(production, cloudflared={"resources": {"cloudflared": {"requests": {"cpu": "1"}}}})
    assert error.startswith("plinth_components.cloudflared.resources.cloudflared: unknown key")


def test_raw_manifests_read_the_table(production):
    spec = build(production)
    tunnel = find(manifests_of(spec, "cloudflared"), "Deployment")
    [container] = tunnel["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == sizing.resources(spec["components"]["cloudflared"], "cloudflared", "cloudflared")
    database = find(manifests_of(spec, "kong"), "Cluster")
    assert database["spec"]["resources"] == sizing.resources(spec["components"]["kong"], "kong", "database")


def test_ceph_daemons_the_module_sizes_match_the_table(production):
    spec = build(production, rook_ceph={"filesystem": True, "object_store": True})
    settings = spec["components"]["rook_ceph"]
    values = values_of(spec, "rook_ceph", "rook-ceph-cluster")
    assert values["cephFileSystems"][0]["spec"]["metadataServer"]["resources"] == \
        sizing.resources(settings, "rook-ceph-cluster", "mds")
    assert values["cephObjectStores"][0]["spec"]["gateway"]["resources"] == \
        sizing.resources(settings, "rook-ceph-cluster", "rgw")


def test_ceph_daemons_the_module_sizes_are_not_offered_to_the_inventory(production):
    [error] = spec_errors(production, rook_ceph={"resources": {"mds": {"requests": {"cpu": "1"}}}})
    assert error.startswith("plinth_components.rook_ceph.resources.mds: unknown key (known keys: ")


def test_daemonsets_count_on_every_pool(production):
    placed = sizing.placed(build(production), registry())
    pools = dict(((who, pool), pods) for pool, who, pods, _containers, _requests in placed)
    for pool in ("gateway", "storage", "worker"):
        assert pools[("cilium/agent", pool)] == 3
        assert pools[("monitoring/node_exporter", pool)] == 3
        assert pools[("rook_ceph/csi_node_plugin", pool)] == 3
    assert ("monitoring/prometheus", "storage") not in pools
    assert pools[("monitoring/prometheus", "worker")] == 2


def test_production_fits_hosts_of_eight_cores_and_32_gib(production):
    for pool in production[0]["plinth_node_pools"].values():
        pool["capacity"] = {"cpu": "7500m", "memory": "28Gi"}
    build(production)


def test_capacity_exceeded_names_the_pool_the_totals_and_the_biggest_consumers(production):
    production[0]["plinth_node_pools"]["worker"]["capacity"] = {"cpu": "8", "memory": "4Gi"}
    [error] = spec_errors(production)
    assert error.startswith("plinth_node_pools.worker.capacity.memory: got '4Gi'; the memory requests placed on "
                            "pool worker total ")
    assert "above its capacity of 4Gi x 3 hosts = 12Gi" in error
    assert "biggest: monitoring/prometheus 4Gi (2 pods), app store-api at autoscaling.max 2.5Gi (10 pods)," in error


def test_capacity_of_each_resource_is_optional(production):
    production[0]["plinth_node_pools"]["worker"]["capacity"] = {"cpu": "8"}
    build(production)


def test_a_bad_capacity_is_an_error(production):
    production[0]["plinth_node_pools"]["worker"]["capacity"] = {"cpu": "eight"}
    [error] = spec_errors(production)
    assert error.startswith("plinth_node_pools.worker.capacity.cpu: got 'eight'; must be a Kubernetes quantity")


def test_staging_sized_overrides_fit_where_the_defaults_do_not():
    staging = copy.deepcopy(load_inventory("staging"))
    # The staging inventory carries overrides of its own: start from the default requests instead,
    # so that only STAGING below makes the difference.
    for settings in staging[0]["plinth_components"].values():
        settings.pop("resources", None)
    for pool in staging[0]["plinth_node_pools"].values():
        pool["capacity"] = {"cpu": "2", "memory": "4Gi"}
    assert any("plinth_node_pools.storage.capacity.memory" in e for e in spec_errors(copy.deepcopy(staging)))
    spec = build(staging, **_merged(STAGING))
    values = gitops.documents(spec)["infra/kube-prometheus-stack/values-staging.yaml"][0]
    assert values["prometheus"]["prometheusSpec"]["resources"] == {
        "requests": {"cpu": "200m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}

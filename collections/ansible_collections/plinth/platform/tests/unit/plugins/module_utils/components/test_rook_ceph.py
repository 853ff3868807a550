# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Rook-Ceph: placement on the storage pool, CSI everywhere, one default StorageClass."""

from __future__ import absolute_import, annotations, division, print_function

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import schema
from ansible_collections.plinth.platform.plugins.module_utils.components import rook_ceph
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, manifests_of, of_kind, spec_errors, values_of)

__metaclass__ = type

STORAGE_TOLERATION = {"key": "node.ceph.storage", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
GATEWAY_TOLERATION = {"key": "node.kong.gateway", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
STORAGE_AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "node.ceph.storage", "operator": "In", "values": ["true"]}]}]}}}
CSI_SECRET_KEYS = [
    "csi.storage.k8s.io/%s-secret-%s" % (step, what)
    for step in ("provisioner", "controller-expand", "controller-publish", "node-stage")
    for what in ("name", "namespace")
]


def _values(spec):
    """The values of each of the three releases, by release name."""
    return dict((r.name, values_of(spec, "rook_ceph", r.name)) for r in rook_ceph.COMPONENT.releases)


@pytest.fixture
def prod(production):
    return build(production)


# --- releases and charts ----------------------------------------------------------

def test_three_releases_in_rook_order():
    releases = rook_ceph.COMPONENT.releases
    assert [(r.name, r.wave) for r in releases] == [
        ("rook-ceph", 10), ("ceph-csi-drivers", 15), ("rook-ceph-cluster", 20)]
    assert [r.chart_option for r in releases] == ["chart", "csi_chart", "cluster_chart"]
    for release in releases:
        assert schema.semver(release.chart["version"]) is None
    # The ceph-csi-operator CRDs are too large for client-side apply.
    assert releases[0].server_side_apply


def test_chart_versions_are_overridable(production):
    chart = {"repo": "oci://mirror.example.com/rook", "name": "rook-ceph-cluster", "version": "v1.20.7"}
    spec = build(production, rook_ceph={"cluster_chart": chart})
    assert spec["components"]["rook_ceph"]["cluster_chart"]["version"] == "v1.20.7"
    assert spec["components"]["rook_ceph"]["chart"]["version"] == "v1.20.6"


def test_production_defaults_are_the_documented_ones(prod):
    settings = prod["components"]["rook_ceph"]
    assert settings["mon_count"] == 3
    assert settings["pool_size"] == 3
    assert settings["devices"] == []
    assert settings["storage_class"] == "rook-ceph-block"
    assert settings["filesystem"] is False and settings["object_store"] is False


def test_values_have_no_shared_objects(production):
    spec = build(production, rook_ceph={"filesystem": True, "object_store": True, "toolbox": True})
    for values in _values(spec).values():
        assert "&id" not in yaml.safe_dump(values)


# --- operators: storage pool ------------------------------------------------------

def test_operators_run_on_the_storage_pool(prod):
    values = _values(prod)["rook-ceph"]
    assert values["nodeSelector"] == {"node.ceph.storage": "true"}
    assert values["tolerations"] == [STORAGE_TOLERATION]
    manager = values["ceph-csi-operator"]["controllerManager"]
    assert manager["nodeSelector"] == {"node.ceph.storage": "true"}
    assert manager["tolerations"] == [STORAGE_TOLERATION]


def test_placement_follows_the_pool_definition(production):
    variables = production[0]
    variables["plinth_node_pools"]["storage"] = {
        "group": "ceph_nodes", "labels": {"example.com/disks": "nvme"},
        "taints": [{"key": "example.com/disks", "value": "nvme", "effect": "NoExecute"}]}
    spec = build(production)
    values = _values(spec)
    taint = {"key": "example.com/disks", "operator": "Equal", "value": "nvme", "effect": "NoExecute"}
    assert values["rook-ceph"]["nodeSelector"] == {"example.com/disks": "nvme"}
    placement = values["rook-ceph-cluster"]["cephClusterSpec"]["placement"]["all"]
    assert placement["tolerations"] == [taint]
    term = placement["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "example.com/disks", "operator": "In", "values": ["nvme"]}]
    assert taint in values["ceph-csi-drivers"]["drivers"]["rbd"]["nodePlugin"]["tolerations"]


# --- CSI drivers ------------------------------------------------------------------

def test_csi_node_plugins_tolerate_every_pool_taint(prod):
    values = _values(prod)["ceph-csi-drivers"]
    defaults = values["operatorConfig"]["driverSpecDefaults"]["nodePlugin"]["tolerations"]
    driver = values["drivers"]["rbd"]["nodePlugin"]["tolerations"]
    for tolerations in (defaults, driver):
        assert GATEWAY_TOLERATION in tolerations
        assert STORAGE_TOLERATION in tolerations
        assert len(tolerations) == 2


def test_csi_node_plugins_reach_a_new_tainted_pool(production):
    variables, groups, _hostvars = production
    groups["gpu_nodes"] = ["gpu-1"]
    groups["k8s_cluster"].append("gpu-1")
    variables["plinth_node_pools"]["gpu"] = {
        "group": "gpu_nodes", "labels": {"node.example.com/gpu": "true"},
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
    values = _values(build(production))["ceph-csi-drivers"]
    gpu = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    assert gpu in values["drivers"]["rbd"]["nodePlugin"]["tolerations"]


def test_csi_provisioner_runs_on_storage_with_two_replicas(prod):
    values = _values(prod)["ceph-csi-drivers"]
    for controller in (values["drivers"]["rbd"]["controllerPlugin"],
                       values["operatorConfig"]["driverSpecDefaults"]["controllerPlugin"]):
        assert controller["replicas"] == 2
        assert controller["tolerations"] == [STORAGE_TOLERATION]
        assert controller["affinity"] == STORAGE_AFFINITY


def test_csi_drivers_match_rook_names(prod):
    values = _values(prod)["ceph-csi-drivers"]
    assert values["operatorConfig"]["namespace"] == "rook-ceph"
    assert values["operatorConfig"]["driverSpecDefaults"]["imageSet"]["name"] == rook_ceph.CSI_IMAGE_SET
    assert values["drivers"]["rbd"] == dict(values["drivers"]["rbd"], enabled=True, name="rook-ceph.rbd.csi.ceph.com")
    assert values["drivers"]["cephfs"]["enabled"] is False
    assert values["drivers"]["nfs"]["enabled"] is False
    assert values["drivers"]["nvmeof"]["enabled"] is False


def test_csi_provisioner_budget(prod):
    budgets = of_kind(manifests_of(prod, "rook_ceph"), "PodDisruptionBudget")
    assert len(budgets) == 1
    assert budgets[0]["metadata"]["namespace"] == "rook-ceph"
    assert budgets[0]["spec"]["minAvailable"] == 1
    assert budgets[0]["spec"]["selector"]["matchLabels"] == {"app": "rook-ceph.rbd.csi.ceph.com-ctrlplugin"}


def test_namespace_override_renames_drivers_and_secrets(production):
    spec = build(production, rook_ceph={"namespace": "storage"})
    values = _values(spec)
    assert values["ceph-csi-drivers"]["drivers"]["rbd"]["name"] == "storage.rbd.csi.ceph.com"
    assert values["rook-ceph-cluster"]["operatorNamespace"] == "storage"
    params = values["rook-ceph-cluster"]["cephBlockPools"][0]["storageClass"]["parameters"]
    assert params["csi.storage.k8s.io/node-stage-secret-namespace"] == "storage"


# --- the Ceph cluster -------------------------------------------------------------

def test_cluster_daemons_stay_on_storage_nodes(prod):
    cluster = _values(prod)["rook-ceph-cluster"]["cephClusterSpec"]
    assert cluster["placement"] == {"all": dict(STORAGE_AFFINITY, tolerations=[STORAGE_TOLERATION])}
    assert cluster["mon"] == {"count": 3, "allowMultiplePerNode": False}
    assert cluster["mgr"] == {"count": 2, "allowMultiplePerNode": False}
    assert cluster["disruptionManagement"]["managePodBudgets"] is True
    assert cluster["storage"] == {"useAllNodes": True, "useAllDevices": True}
    assert cluster["dashboard"]["enabled"] is True


def test_named_devices_replace_use_all_devices(production):
    spec = build(production, rook_ceph={"devices": ["sdb", "/dev/disk/by-id/nvme-SAMSUNG_1"]})
    storage = _values(spec)["rook-ceph-cluster"]["cephClusterSpec"]["storage"]
    assert storage == {"useAllNodes": True, "useAllDevices": False,
                       "devices": [{"name": "sdb"}, {"name": "/dev/disk/by-id/nvme-SAMSUNG_1"}]}


def test_block_pool_and_the_single_default_storage_class(prod):
    values = _values(prod)["rook-ceph-cluster"]
    pool, = values["cephBlockPools"]
    assert pool["spec"] == {"failureDomain": "host", "replicated": {"size": 3, "requireSafeReplicaSize": True}}
    storage_class = pool["storageClass"]
    assert storage_class["name"] == "rook-ceph-block"
    assert storage_class["isDefault"] is True
    for key in CSI_SECRET_KEYS:
        assert key in storage_class["parameters"]
    assert storage_class["parameters"]["csi.storage.k8s.io/provisioner-secret-name"] == "rook-csi-rbd-provisioner"
    assert storage_class["parameters"]["csi.storage.k8s.io/node-stage-secret-name"] == "rook-csi-rbd-node"
    # The chart ships a filesystem and an object store by default: they must be switched off explicitly.
    assert values["cephFileSystems"] == []
    assert values["cephObjectStores"] == []


def test_storage_class_name_is_an_option(production):
    values = _values(build(production, rook_ceph={"storage_class": "fast"}))["rook-ceph-cluster"]
    assert values["cephBlockPools"][0]["storageClass"]["name"] == "fast"


def test_pool_size_applies_to_every_pool(production):
    spec = build(production, rook_ceph={"pool_size": 2, "filesystem": True, "object_store": True})
    values = _values(spec)["rook-ceph-cluster"]
    replicated = {"size": 2, "requireSafeReplicaSize": True}
    assert values["cephBlockPools"][0]["spec"]["replicated"] == replicated
    fs = values["cephFileSystems"][0]["spec"]
    assert fs["metadataPool"]["replicated"] == replicated
    assert fs["dataPools"][0]["replicated"] == replicated
    store = values["cephObjectStores"][0]["spec"]
    assert store["metadataPool"]["replicated"] == replicated
    assert store["dataPool"]["replicated"] == replicated


def test_filesystem_toggle(production):
    spec = build(production, rook_ceph={"filesystem": True})
    values = _values(spec)
    fs, = values["rook-ceph-cluster"]["cephFileSystems"]
    assert fs["storageClass"]["name"] == "rook-cephfs"
    assert fs["storageClass"]["isDefault"] is False
    for key in CSI_SECRET_KEYS:
        assert key in fs["storageClass"]["parameters"]
    assert fs["spec"]["metadataServer"]["placement"] == dict(STORAGE_AFFINITY, tolerations=[STORAGE_TOLERATION])
    assert values["ceph-csi-drivers"]["drivers"]["cephfs"]["enabled"] is True
    apps = sorted(d["spec"]["selector"]["matchLabels"]["app"] for d in manifests_of(spec, "rook_ceph"))
    assert apps == ["rook-ceph.cephfs.csi.ceph.com-ctrlplugin", "rook-ceph.rbd.csi.ceph.com-ctrlplugin"]


def test_object_store_toggle(production):
    values = _values(build(production, rook_ceph={"object_store": True}))["rook-ceph-cluster"]
    store, = values["cephObjectStores"]
    assert store["storageClass"]["name"] == "rook-ceph-bucket"
    assert "isDefault" not in store["storageClass"]
    gateway = store["spec"]["gateway"]
    assert gateway["instances"] == 2
    assert gateway["placement"] == dict(STORAGE_AFFINITY, tolerations=[STORAGE_TOLERATION])


def test_only_block_storage_class_is_default(production):
    spec = build(production, rook_ceph={"filesystem": True, "object_store": True})
    values = _values(spec)["rook-ceph-cluster"]
    classes = [p["storageClass"] for p in values["cephBlockPools"] + values["cephFileSystems"]
               + values["cephObjectStores"]]
    assert [c["name"] for c in classes if c.get("isDefault")] == ["rook-ceph-block"]


@pytest.mark.parametrize("enabled", [True, False])
def test_monitoring_follows_the_monitoring_component(production, enabled):
    values = _values(build(production, monitoring={"enabled": enabled}))
    assert values["rook-ceph"]["monitoring"]["enabled"] is enabled
    monitoring = values["rook-ceph-cluster"]["monitoring"]
    assert monitoring["enabled"] is enabled
    assert monitoring["createPrometheusRules"] is enabled


def test_monitoring_rules_carry_the_stack_release_label(production):
    monitoring = _values(build(production))["rook-ceph-cluster"]["monitoring"]
    assert monitoring["prometheusRule"] == {"labels": {"release": "kube-prometheus-stack"}}


# --- volume snapshots -----------------------------------------------------------------

def test_block_storage_class_gets_the_default_volume_snapshot_class(prod):
    values = _values(prod)["rook-ceph-cluster"]
    assert values["cephBlockPoolsVolumeSnapshotClass"] == {
        "enabled": True, "name": "ceph-block", "isDefault": True, "deletionPolicy": "Delete",
        "annotations": {}, "labels": {}, "parameters": {}}
    assert rook_ceph.volume_snapshot_class(prod) == "ceph-block"


def test_volume_snapshot_class_options(production):
    spec = build(production, rook_ceph={"volume_snapshot_class": "rbd-snapshots", "snapshot_deletion_policy": "Retain"})
    snapshot_class = _values(spec)["rook-ceph-cluster"]["cephBlockPoolsVolumeSnapshotClass"]
    assert (snapshot_class["name"], snapshot_class["deletionPolicy"]) == ("rbd-snapshots", "Retain")


def test_no_volume_snapshot_class_when_set_to_null(production):
    spec = build(production, rook_ceph={"volume_snapshot_class": None}, kong={"database": {
        "mode": "cloudnative-pg", "backup": {"enabled": False}}})
    assert _values(spec)["rook-ceph-cluster"]["cephBlockPoolsVolumeSnapshotClass"] == {"enabled": False}
    assert rook_ceph.volume_snapshot_class(spec) is None


def test_volume_snapshot_class_needs_the_snapshot_controller(production):
    errors = spec_errors(production, snapshot_controller={"enabled": False})
    assert ("plinth_components.rook_ceph.volume_snapshot_class: got 'ceph-block'; a VolumeSnapshotClass needs "
            "the snapshot CRDs and controller: enable plinth_components.snapshot_controller, or set "
            "volume_snapshot_class: null") in errors


def test_no_snapshot_controller_is_fine_without_a_snapshot_class(production):
    build(production, snapshot_controller={"enabled": False}, rook_ceph={"volume_snapshot_class": None},
          kong={"database": {"mode": "cloudnative-pg", "backup": {"enabled": False}}})


def test_object_store_endpoint_for_bucket_users(production, prod):
    assert not rook_ceph.object_store_enabled(prod)
    spec = build(production, rook_ceph={"object_store": True})
    assert rook_ceph.object_store_enabled(spec)
    assert rook_ceph.object_store_endpoint(spec) == "http://rook-ceph-rgw-ceph-objectstore.rook-ceph.svc:80"
    store, = _values(spec)["rook-ceph-cluster"]["cephObjectStores"]
    assert store["spec"]["gateway"]["port"] == 80


def test_toolbox_stays_on_storage_nodes(production):
    toolbox = _values(build(production, rook_ceph={"toolbox": True}))["rook-ceph-cluster"]["toolbox"]
    assert toolbox["enabled"] is True
    assert toolbox["tolerations"] == [STORAGE_TOLERATION]
    assert toolbox["affinity"] == STORAGE_AFFINITY


def test_single_host_storage_pool(production):
    variables, groups, _hostvars = production
    groups["ceph_nodes"] = ["ceph-1"]
    spec = build(production, rook_ceph={"mon_count": 1, "mgr_count": 1, "pool_size": 1})
    values = _values(spec)
    assert values["rook-ceph-cluster"]["cephBlockPools"][0]["spec"]["replicated"] == {
        "size": 1, "requireSafeReplicaSize": False}
    assert values["ceph-csi-drivers"]["drivers"]["rbd"]["controllerPlugin"]["replicas"] == 1
    assert manifests_of(spec, "rook_ceph") == []


def test_no_network_policies_and_no_secrets(prod):
    assert [d for d in manifests_of(prod, "rook_ceph") if d["kind"] != "PodDisruptionBudget"] == []
    text = yaml.safe_dump(_values(prod))
    assert "password" not in text.lower()


# --- validation -------------------------------------------------------------------

def test_even_mon_count_is_rejected(production):
    production[1]["ceph_nodes"] = ["ceph-1", "ceph-2", "ceph-3", "ceph-4"]
    production[1]["k8s_cluster"].append("ceph-4")
    assert spec_errors(production, rook_ceph={"mon_count": 4}) == [
        "plinth_components.rook_ceph.mon_count: got 4; "
        "must be odd (1, 3, 5, ...) so that a majority of MONs keeps quorum"]


def test_three_mons_need_three_storage_hosts(production):
    production[1]["ceph_nodes"] = ["ceph-1", "ceph-2"]
    assert spec_errors(production) == [
        "plinth_components.rook_ceph.mon_count: got 3; 3 MONs need 3 hosts in pool 'storage' "
        "(group ceph_nodes has 2)",
        "plinth_components.rook_ceph.pool_size: got 3; 3 copies of each Ceph pool (failure domain host) "
        "need 3 hosts in pool 'storage' (group ceph_nodes has 2)"]


@pytest.mark.parametrize("option, count, error", [
    ("mon_count", 5, "5 MONs need 5 hosts in pool 'storage' (group ceph_nodes has 3)"),
    ("pool_size", 4, "4 copies of each Ceph pool (failure domain host) need 4 hosts in pool 'storage' "
                     "(group ceph_nodes has 3)"),
    ("mgr_count", 4, "4 MGRs need 4 hosts in pool 'storage' (group ceph_nodes has 3)"),
])
def test_daemons_and_copies_must_fit_the_storage_pool(production, option, count, error):
    assert spec_errors(production, rook_ceph={option: count}) == [
        f"plinth_components.rook_ceph.{option}: got {count}; {error}"]


@pytest.mark.parametrize("option, value, rule", [
    ("mon_count", 0, "must be at least 1"),
    ("mon_count", 11, "must be at most 9"),
    ("pool_size", 0, "must be at least 1"),
    ("storage_class", "Fast_SSD", "must be a DNS subdomain (lowercase letters, digits, '-' and '.')"),
    ("filesystem", "yes", "must be true or false"),
    ("volume_snapshot_class", "Ceph_Block", "must be a DNS subdomain (lowercase letters, digits, '-' and '.')"),
    ("snapshot_deletion_policy", "Keep", "must be one of 'Delete', 'Retain'"),
])
def test_bad_option_values(production, option, value, rule):
    errors = spec_errors(production, rook_ceph={option: value})
    assert "plinth_components.rook_ceph.%s: got %r; %s" % (option, value, rule) in errors


def test_bad_device_name(production):
    assert spec_errors(production, rook_ceph={"devices": ["sdb", "sd b"]}) == [
        "plinth_components.rook_ceph.devices[1]: got 'sd b'; "
        "must be a device name like sdb or nvme0n1, or a path like /dev/disk/by-id/..."]


def test_unknown_option_is_rejected(production):
    errors = spec_errors(production, rook_ceph={"mons": 3})
    assert any(e.startswith("plinth_components.rook_ceph.mons: unknown key") for e in errors)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Per-node labels and taints from the spec, and the plan that gets a live Node there."""

from __future__ import absolute_import, annotations, division, print_function

import copy

from ansible_collections.plinth.platform.plugins.module_utils import topology
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

__metaclass__ = type

GW_TAINT = {"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def spec_of(env="staging", edit=None):
    variables, groups, hostvars = copy.deepcopy(load_inventory(env))
    if edit:
        edit(variables, groups, hostvars)
    return build_spec(variables, groups, hostvars)


def test_each_pool_host_gets_its_pool_labels_and_taints():
    nodes = topology.node_topology(spec_of())
    assert nodes["stg-gw-1"] == {"labels": {"node.kong.gateway": "true"}, "taints": [GW_TAINT]}
    assert nodes["stg-worker-1"] == {"labels": {"node.role": "worker"}, "taints": []}
    assert nodes["stg-cp-1"] == {"labels": {}, "taints": []}
    assert sorted(nodes) == sorted(spec_of()["hosts"])


def test_a_host_in_two_pools_gets_the_union():
    def edit(variables, groups, hostvars):
        variables["plinth_node_pools"]["monitoring"] = {
            "group": "monitoring_nodes", "labels": {"node.monitoring": "true"}, "taints": []}
        groups["monitoring_nodes"] = ["stg-worker-1"]
    nodes = topology.node_topology(spec_of(edit=edit))
    assert nodes["stg-worker-1"]["labels"] == {"node.monitoring": "true", "node.role": "worker"}


def test_kubeadm_marks_are_never_plinths_on_control_plane_hosts():
    def edit(variables, groups, hostvars):
        variables["plinth_node_pools"]["infra"] = {
            "group": "infra_nodes",
            "labels": {"node-role.kubernetes.io/control-plane": "", "node.infra": "true"},
            "taints": [CP_TAINT]}
        groups["infra_nodes"] = ["stg-cp-1", "stg-extra-1"]
        groups["k8s_cluster"] = sorted(groups["k8s_cluster"] + ["stg-extra-1"])
    nodes = topology.node_topology(spec_of(edit=edit))
    assert nodes["stg-cp-1"] == {"labels": {"node.infra": "true"}, "taints": []}
    # On a host kubeadm did not mark, the pool's word is Plinth's.
    assert nodes["stg-extra-1"]["taints"] == [CP_TAINT]
    assert nodes["stg-extra-1"]["labels"]["node-role.kubernetes.io/control-plane"] == ""


def live(labels=None, taints=None, managed=(), annotation=None):
    fields = []
    for manager, operation, keys, owns_taints in managed:
        v1 = {"f:metadata": {"f:labels": dict(("f:" + k, {}) for k in keys)}}
        if owns_taints:
            v1["f:spec"] = {"f:taints": {}}
        fields.append({"manager": manager, "operation": operation, "fieldsV1": v1})
    metadata = {"name": "n1", "resourceVersion": "7", "labels": dict(labels or {}), "managedFields": fields}
    if annotation is not None:
        metadata["annotations"] = {topology.TAINTS_ANNOTATION: annotation}
    return {"metadata": metadata, "spec": {"taints": list(taints or [])}}


def test_a_node_already_as_wanted_and_owned_needs_nothing():
    node = live({"node.kong.gateway": "true"}, [GW_TAINT],
                [("plinth", "Apply", ["node.kong.gateway"], True)], "node.kong.gateway:NoSchedule")
    plan = topology.plan_node(node, {"labels": {"node.kong.gateway": "true"}, "taints": [GW_TAINT]})
    assert plan["changed"] is False and plan["apply"] is None


def test_foreign_taints_are_kept_in_the_whole_list_plinth_sends():
    foreign = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
    plan = topology.plan_node(live(taints=[foreign]), {"labels": {}, "taints": [GW_TAINT]})
    assert plan["apply"]["spec"]["taints"] == [foreign, GW_TAINT]
    assert plan["apply"]["metadata"]["resourceVersion"] == "7"
    assert plan["apply"]["metadata"]["annotations"] == {topology.TAINTS_ANNOTATION: "node.kong.gateway:NoSchedule"}


def test_only_taints_plinth_recorded_are_removed():
    foreign = {"key": "example.com/x", "effect": "NoExecute"}
    node = live(taints=[foreign, GW_TAINT], managed=[("plinth", "Apply", [], True)],
                annotation="node.kong.gateway:NoSchedule")
    plan = topology.plan_node(node, {"labels": {}, "taints": []})
    assert plan["changes"]["taints_removed"] == ["node.kong.gateway=true:NoSchedule"]
    # Plinth holds the atomic list: it must send what stays, or the apply would drop every taint.
    assert plan["apply"]["spec"]["taints"] == [foreign]
    assert "annotations" not in plan["apply"]["metadata"]


def test_a_taint_value_change_replaces_the_taint_in_place():
    old = dict(GW_TAINT, value="old")
    node = live(taints=[old], managed=[("plinth", "Apply", [], True)], annotation="node.kong.gateway:NoSchedule")
    plan = topology.plan_node(node, {"labels": {}, "taints": [GW_TAINT]})
    assert plan["apply"]["spec"]["taints"] == [GW_TAINT]
    assert plan["changes"]["taints_added"] == ["node.kong.gateway=true:NoSchedule"]
    assert plan["changes"]["taints_removed"] == ["node.kong.gateway=old:NoSchedule"]


def test_no_taints_wanted_or_held_leaves_the_list_alone():
    plan = topology.plan_node(live(taints=[CP_TAINT]), {"labels": {"a": "b"}, "taints": []})
    assert "spec" not in plan["apply"]


def test_stale_labels_removed_released_or_left_by_who_else_holds_them():
    node = live({"gone": "1", "kubelet-too": "1", "operator-too": "1", "other": "1"}, managed=[
        ("plinth", "Apply", ["gone", "kubelet-too", "operator-too"], False),
        ("kubelet", "Update", ["kubelet-too"], False),
        ("operator", "Apply", ["operator-too", "other"], False)])
    plan = topology.plan_node(node, {"labels": {}, "taints": []})
    assert plan["changes"]["labels_removed"] == ["gone", "kubelet-too"]
    assert plan["changes"]["labels_released"] == ["operator-too"]
    assert plan["release"] == ["kubelet-too"]
    assert plan["after"]["labels"] == {"operator-too": "1", "other": "1"}


def test_wanted_labels_already_there_are_adopted():
    node = live({"node.role": "worker"}, managed=[("kubelet", "Update", ["node.role"], False)])
    plan = topology.plan_node(node, {"labels": {"node.role": "worker"}, "taints": []})
    assert plan["changed"] is True
    assert plan["changes"]["adopted"] == ["label node.role"]
    assert plan["before"] == plan["after"]


def test_managed_taints_annotation_round_trips():
    text = topology.format_managed_taints([GW_TAINT, CP_TAINT])
    assert text == "node-role.kubernetes.io/control-plane:NoSchedule,node.kong.gateway:NoSchedule"
    assert topology.parse_managed_taints(text) == {("node.kong.gateway", "NoSchedule"),
                                                   ("node-role.kubernetes.io/control-plane", "NoSchedule")}
    assert topology.parse_managed_taints("") == set()

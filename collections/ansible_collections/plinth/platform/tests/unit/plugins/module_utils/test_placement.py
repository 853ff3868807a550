# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Each host's pools, labels and taints, and kubeadm's own marks on the control plane."""

from __future__ import absolute_import, annotations, division, print_function

import copy

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import placement
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import documents
from ansible_collections.plinth.platform.plugins.module_utils import topology
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

__metaclass__ = type

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
GW_TAINT = {"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}
INFRA_TAINT = {"key": "node.infra", "value": "true", "effect": "NoSchedule"}


def _with_infra_pool_on_the_control_plane(variables, _groups, _hostvars):
    variables["plinth_node_pools"]["infra"] = {
        "group": "control_plane", "labels": {"node.role": "infra", "node-role.kubernetes.io/control-plane": ""},
        "taints": [INFRA_TAINT, dict(CP_TAINT, value="")]}


def spec_of(edit=None):
    variables, groups, hostvars = copy.deepcopy(load_inventory("production"))
    if edit is not None:
        edit(variables, groups, hostvars)
    return build_spec(variables, groups, hostvars)


def test_constants_are_kubeadms():
    assert placement.CONTROL_PLANE_TAINT == CP_TAINT
    assert placement.CONTROL_PLANE_TOLERATION == dict(CP_TAINT, operator="Exists")


def test_a_pool_host_carries_its_pools_labels_and_taints():
    spec = spec_of()
    assert placement.host_pools(spec, "gw-1") == ["gateway"]
    assert placement.host_labels(spec, "gw-1") == {"node.kong.gateway": "true"}
    assert placement.host_taints(spec, "gw-1") == [GW_TAINT]
    assert placement.host_taints(spec, "worker-1") == []
    assert placement.kubeadm_marks(spec, "gw-1") == (set(), set())


def test_a_control_plane_host_carries_kubeadms_taint_once():
    spec = spec_of()
    assert placement.host_pools(spec, "cp-1") == []
    assert placement.host_taints(spec, "cp-1") == [CP_TAINT]
    spec = spec_of(_with_infra_pool_on_the_control_plane)
    assert placement.host_taints(spec, "cp-1") == [CP_TAINT, INFRA_TAINT]
    assert placement.kubeadm_marks(spec, "cp-1") == ({CP_TAINT["key"]}, {(CP_TAINT["key"], "NoSchedule")})


@pytest.mark.parametrize("host", ["cp-1", "cp-2", "gw-1", "ceph-2", "worker-3"])
@pytest.mark.parametrize("edit", [None, _with_infra_pool_on_the_control_plane])
def test_join_and_topology_decide_taints_in_the_same_place(host, edit):
    """kubeadm registers the node with placement's taints; node_topology manages them less kubeadm's own."""
    spec = spec_of(edit)
    registered = documents.node_registration(spec, host)["taints"]
    assert registered == placement.host_taints(spec, host)
    _labels, kubeadms = placement.kubeadm_marks(spec, host)
    assert topology.node_topology(spec)[host]["taints"] == [
        t for t in registered if placement.taint_id(t) not in kubeadms]


def test_the_normalizer_drops_empty_values_and_keeps_time_added():
    assert placement.normalized_taint({"key": "k", "value": "", "effect": "NoSchedule"}) == {
        "key": "k", "effect": "NoSchedule"}
    assert placement.normalized_taint({"key": "k", "value": "v", "effect": "NoExecute", "timeAdded": "t"}) == {
        "key": "k", "value": "v", "effect": "NoExecute", "timeAdded": "t"}

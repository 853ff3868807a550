# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The shared NetworkPolicy and PodDisruptionBudget builders every component uses."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RULE = {"ports": common.tcp_ports(80)}


@pytest.mark.parametrize("kwargs,types,keys", [
    (dict(ingress=[RULE]), ["Ingress"], {"ingress"}),
    (dict(egress=[RULE]), ["Egress"], {"egress"}),
    (dict(ingress=[RULE], egress=[RULE]), ["Ingress", "Egress"], {"ingress", "egress"}),
    # No rules for a named direction: that direction is denied.
    (dict(types=["Ingress", "Egress"]), ["Ingress", "Egress"], set()),
])
def test_policy_types_follow_the_rules_given(kwargs, types, keys):
    policy = common.network_policy("p", "ns", {"app": "a"}, **kwargs)
    assert policy["spec"]["policyTypes"] == types
    assert set(policy["spec"]) - {"podSelector", "policyTypes"} == keys


def test_policy_selects_every_pod_without_labels_and_copies_the_labels_it_gets():
    labels = {"app": "a"}
    assert common.network_policy("p", "ns", egress=[])["spec"]["podSelector"] == {}
    selector = common.network_policy("p", "ns", labels, egress=[])["spec"]["podSelector"]
    assert selector == {"matchLabels": labels} and selector["matchLabels"] is not labels


def test_namespace_peer_narrows_to_pods_only_when_labels_are_given():
    assert common.namespace_peer("vault") == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vault"}}}
    assert common.namespace_peer("vault", {"component": "server"})["podSelector"] == {
        "matchLabels": {"component": "server"}}


@pytest.mark.parametrize("replicas,kept", [(2, 1), (3, 2), (5, 3)])
def test_disruption_budget_keeps_a_majority(replicas, kept):
    budget = common.pod_disruption_budget("b", "ns", {"app": "a"}, replicas, labels={"team": "x"})
    assert budget["kind"] == "PodDisruptionBudget" and budget["apiVersion"] == "policy/v1"
    assert budget["spec"] == {"minAvailable": kept, "selector": {"matchLabels": {"app": "a"}}}
    assert budget["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "plinth", "team": "x"}

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The cni_bridge filters: thin wrappers, unreadable command output as AnsibleFilterError."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.plinth.platform.plugins.filter import cni_bridge as plugin

__metaclass__ = type


def test_the_filters_are_exported():
    assert plugin.FilterModule().filters() == {
        "cni_bridge_plugins": plugin.cni_bridge_plugins,
        "cni_bridge_api_host": plugin.cni_bridge_api_host,
        "cni_bridge_nodes": plugin.cni_bridge_nodes,
        "cni_bridge_routes": plugin.cni_bridge_routes,
    }


def test_the_filters_take_what_ansible_hands_them():
    assert plugin.cni_bridge_plugins("", ("bridge",), "amd64", "/opt/cni/bin")["missing"] == ["bin/linux/amd64/bridge"]
    assert plugin.cni_bridge_nodes("", ("cp-1",), 0)["unregistered"] == ["cp-1"]
    assert plugin.cni_bridge_routes({"cp-1": ["10.244.0.0/24", "10.0.0.11"]}, "worker-1")["wanted"] == [
        "10.244.0.0/24 via 10.0.0.11"]


@pytest.mark.parametrize("call", [
    lambda: plugin.cni_bridge_nodes("error: the server doesn't have a resource type", ["cp-1"]),
    lambda: plugin.cni_bridge_nodes('{"kind": "Status"}', ["cp-1"]),
    lambda: plugin.cni_bridge_routes({}, "cp-1", "not json"),
])
def test_output_that_is_not_the_commands_json_is_a_filter_error(call):
    with pytest.raises(AnsibleFilterError, match="cannot read the command's output"):
        call()

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""What the cni_bridge role decides from what it read: plugins to fetch, nodes it covers, routes it adds."""

from __future__ import absolute_import, annotations, division, print_function

import json

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import cni_bridge

__metaclass__ = type

PLUGINS = ["bridge", "host-local", "loopback", "portmap"]
SUMS = "".join("%s  bin/linux/amd64/%s\n" % (digit * 64, name) for digit, name in zip("1234", PLUGINS))


def node(name, pod_cidr, *addresses):
    spec = {"podCIDR": pod_cidr} if pod_cidr else {}
    listed = [{"type": kind, "address": address} for kind, address in addresses]
    listed.append({"type": "Hostname", "address": name})
    return {"metadata": {"name": name}, "spec": spec, "status": {"addresses": listed}}


def node_list(*nodes):
    return json.dumps({"kind": "List", "items": list(nodes)})


@pytest.mark.parametrize("text, expected", [
    ("", {}),
    (SUMS, dict(("bin/linux/amd64/%s" % name, digit * 64) for digit, name in zip("1234", PLUGINS))),
    # A blank line, and lines that are not "<sum> <path>", name nothing.
    ("\n%s  a\nonly-one-field\nx y z\n" % ("f" * 64), {"a": "f" * 64}),
])
def test_checksums_map_release_paths_to_sums(text, expected):
    assert cni_bridge.checksums(text) == expected


@pytest.mark.parametrize("installed, current", [
    ("", []),
    ("1" * 64 + "  /opt/cni/bin/bridge\n" + "9" * 64 + "  /opt/cni/bin/host-local\n" + "3" * 64 + "  /opt/cni/bin/loopback",
     ["bridge", "loopback"]),
    # sha256sum's own spacing does not matter; another folder does.
    ("1" * 64 + " /opt/cni/bin/bridge\n" + "4" * 64 + "  /usr/lib/cni/portmap", ["bridge"]),
])
def test_only_plugins_installed_with_the_listed_sum_are_current(installed, current):
    release = cni_bridge.plugins(SUMS, PLUGINS, "amd64", "/opt/cni/bin", installed)
    assert release["current"] == current
    assert release["missing"] == []
    assert release["paths"]["portmap"] == "bin/linux/amd64/portmap"
    assert release["checksums"]["bin/linux/amd64/portmap"] == "4" * 64


def test_plugins_the_mirror_lists_no_sum_for_are_missing_and_never_current():
    release = cni_bridge.plugins(SUMS, PLUGINS, "arm64", "/opt/cni/bin", "1" * 64 + "  /opt/cni/bin/bridge")
    assert release["missing"] == ["bin/linux/arm64/%s" % name for name in PLUGINS]
    assert release["current"] == []


@pytest.mark.parametrize("results, host", [
    ([], ""),
    ([{"item": "cp-1", "stat": {"exists": False}}, {"item": "cp-2", "stat": {"exists": True}},
      {"item": "cp-3", "stat": {"exists": True}}], "cp-2"),
    # A skipped or failed stat has no stat result.
    ([{"item": "cp-1", "skipped": True}, {"item": "cp-2", "stat": {"exists": False}}], ""),
])
def test_the_api_host_is_the_first_that_runs_the_cluster(results, host):
    assert cni_bridge.api_host(results) == host


def test_nodes_are_read_as_pod_cidr_and_the_address_of_the_pod_networks_family():
    text = node_list(node("cp-1", "10.244.0.0/24", ("InternalIP", "10.0.0.11")),
                     node("worker-1", "10.244.1.0/24", ("InternalIP", "fd00::21"), ("InternalIP", "10.0.0.21"),
                          ("ExternalIP", "192.0.2.21")))
    assert cni_bridge.nodes(text, ["cp-1", "worker-1"])["nodes"] == {
        "cp-1": ["10.244.0.0/24", "10.0.0.11"], "worker-1": ["10.244.1.0/24", "10.0.0.21"]}
    assert cni_bridge.nodes(text, ["cp-1", "worker-1"], ipv6=True)["nodes"] == {
        "cp-1": ["10.244.0.0/24", ""], "worker-1": ["10.244.1.0/24", "fd00::21"]}


def test_hosts_the_network_cannot_cover_are_named_by_reason_in_that_order():
    text = node_list(node("cp-1", "10.244.0.0/24", ("InternalIP", "10.0.0.11")),
                     node("worker-1", "", ("InternalIP", "10.0.0.21")),
                     node("worker-3", "10.244.3.0/24"),
                     node("worker-4", "10.244.4.0/24"))
    state = cni_bridge.nodes(text, ["cp-1", "worker-1", "worker-2", "worker-4"])
    assert state["unregistered"] == ["worker-2"]
    assert state["without_pod_cidr"] == ["worker-1"]
    assert state["without_address"] == ["worker-4"]  # worker-3 lacks one too, but is not a host of the play
    assert state["missing"] == ["worker-2", "worker-1", "worker-4"]


@pytest.mark.parametrize("text", ["", None])
def test_no_node_list_yet_means_every_host_is_unregistered(text):
    assert cni_bridge.nodes(text, ["cp-1"]) == {"nodes": {}, "unregistered": ["cp-1"], "without_pod_cidr": [],
                                                "without_address": [], "missing": ["cp-1"]}


def test_routes_go_to_every_other_complete_node_in_name_order():
    nodes = {"worker-2": ["10.244.2.0/24", "10.0.0.22"], "cp-1": ["10.244.0.0/24", "10.0.0.11"],
             "worker-1": ["10.244.1.0/24", "10.0.0.21"], "worker-3": ["", "10.0.0.23"], "worker-4": ["10.244.4.0/24", ""]}
    assert cni_bridge.routes(nodes, "worker-1")["wanted"] == [
        "10.244.0.0/24 via 10.0.0.11", "10.244.2.0/24 via 10.0.0.22"]
    assert cni_bridge.routes({"cp-1": ["10.244.0.0/24", "10.0.0.11"]}, "cp-1")["wanted"] == []


def test_current_routes_are_those_with_a_gateway():
    table = [{"dst": "default", "gateway": "10.0.0.1", "dev": "eth0"},
             {"dst": "10.0.0.0/24", "dev": "eth0", "scope": "link"},
             {"dst": "10.244.2.0/24", "gateway": "10.0.0.99", "dev": "eth0"}]
    assert cni_bridge.routes({}, "cp-1", json.dumps(table))["current"] == [
        "default via 10.0.0.1", "10.244.2.0/24 via 10.0.0.99"]
    assert cni_bridge.routes({}, "cp-1", "")["current"] == []

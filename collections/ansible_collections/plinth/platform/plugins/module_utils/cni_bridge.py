# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""What the cni_bridge role reads and decides, as plain functions of what it read.

The role reads the release's ``SHA256SUMS``, ``sha256sum`` of the installed plugins,
``kubectl get nodes -o json`` and ``ip -json route show``; these functions turn that text
into what it installs, which routes it wants and which ones are already there. Every
input is text as the command printed it ("" before the command ran, as in check mode).
"""

from __future__ import absolute_import, annotations, division, print_function

import json

__metaclass__ = type


def release_paths(plugins, arch):
    """``{plugin: path under the release}``: where the release keeps each plugin for ``arch``."""
    return dict((name, "bin/linux/%s/%s" % (arch, name)) for name in plugins)


def checksums(sums_text):
    """``{path: sha256}`` from ``SHA256SUMS`` lines, "<sha256>  <path under the release>"."""
    found = {}
    for line in (sums_text or "").splitlines():
        fields = line.split()
        if len(fields) == 2:
            found[fields[1]] = fields[0]
    return found


def plugins(sums_text, names, arch, bin_dir, installed_text=""):
    """Where each plugin comes from, its checksum, what the mirror lacks and what is installed already.

    ``installed_text`` is what ``sha256sum -- <bin_dir>/<plugin>...`` printed: a plugin is
    current when it is installed with the checksum the mirror lists for it.
    """
    paths = release_paths(names, arch)
    sums = checksums(sums_text)
    installed = set(" ".join(line.split()) for line in (installed_text or "").splitlines())
    current = [name for name in names
               if paths[name] in sums and "%s %s/%s" % (sums[paths[name]], bin_dir, name) in installed]
    return {
        "paths": paths,
        "checksums": sums,
        "missing": [paths[name] for name in names if paths[name] not in sums],
        "current": current,
    }


def api_host(stat_results):
    """The first host whose stat found the file (the admin kubeconfig of a running cluster), else ""."""
    for result in stat_results or []:
        if (result.get("stat") or {}).get("exists"):
            return result["item"]
    return ""


def _internal_address(node, ipv6):
    """The node's first InternalIP of the pod network's family, else ""."""
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP" and (":" in address.get("address", "")) == ipv6:
            return address["address"]
    return ""


def nodes(node_list_text, hosts, ipv6=False):
    """The nodes the API server lists, and those of ``hosts`` the pod network cannot cover yet.

    ``nodes`` maps a node name to ``[podCIDR, InternalIP]`` ("" where missing), in the API's
    order; the node name is the inventory name. ``missing`` lists the hosts not registered,
    then those without a pod CIDR, then those without an address.
    """
    items = json.loads(node_list_text or '{"items": []}')["items"]
    found = dict((item["metadata"]["name"], [(item.get("spec") or {}).get("podCIDR", ""),
                                             _internal_address(item, ipv6)]) for item in items)
    unregistered = [host for host in hosts if host not in found]
    without_pod_cidr = [name for name, value in found.items() if name in hosts and not value[0]]
    without_address = [name for name, value in found.items() if name in hosts and not value[1]]
    return {
        "nodes": found,
        "unregistered": unregistered,
        "without_pod_cidr": without_pod_cidr,
        "without_address": without_address,
        "missing": unregistered + without_pod_cidr + without_address,
    }


def routes(node_map, host, route_table_text=""):
    """The routes ``host`` needs to the other nodes' pod CIDRs, and those it has, as "<dst> via <gateway>".

    ``wanted`` follows node names, for every other node with both a pod CIDR and an address;
    ``current`` lists the routes with a gateway of ``ip -json route show``.
    """
    wanted = ["%s via %s" % tuple(value) for name, value in sorted(node_map.items())
              if name != host and all(value)]
    table = json.loads(route_table_text or "[]")
    current = ["%s via %s" % (entry.get("dst"), entry["gateway"]) for entry in table if "gateway" in entry]
    return {"wanted": wanted, "current": current}

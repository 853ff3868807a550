# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""What the cni_bridge role installs and routes; the logic lives in module_utils/cni_bridge.py.

Documented in cni_bridge_plugins.yml, cni_bridge_api_host.yml, cni_bridge_nodes.yml and
cni_bridge_routes.yml beside this file.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible.errors import AnsibleFilterError

from ansible_collections.plinth.platform.plugins.module_utils import cni_bridge

__metaclass__ = type


def _json_of(name, call, *args):
    """``call(*args)``; text that is not the JSON the command prints fails naming the filter."""
    try:
        return call(*args)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("%s: cannot read the command's output (%s: %s)" % (name, type(exc).__name__, exc))


def cni_bridge_plugins(sums_text, plugins, arch, bin_dir, installed_text=""):
    return cni_bridge.plugins(sums_text, list(plugins), arch, bin_dir, installed_text)


def cni_bridge_api_host(stat_results):
    return cni_bridge.api_host(stat_results)


def cni_bridge_nodes(node_list_text, hosts, ipv6=False):
    return _json_of("cni_bridge_nodes", cni_bridge.nodes, node_list_text, list(hosts), bool(ipv6))


def cni_bridge_routes(node_map, host, route_table_text=""):
    return _json_of("cni_bridge_routes", cni_bridge.routes, dict(node_map), host, route_table_text)


class FilterModule(object):
    def filters(self):
        return {
            "cni_bridge_plugins": cni_bridge_plugins,
            "cni_bridge_api_host": cni_bridge_api_host,
            "cni_bridge_nodes": cni_bridge_nodes,
            "cni_bridge_routes": cni_bridge_routes,
        }

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Per-node labels and taints from the platform spec; the logic lives in module_utils/topology.py."""

from __future__ import absolute_import, annotations, division, print_function

from ansible.errors import AnsibleFilterError

from ansible_collections.plinth.platform.plugins.module_utils import topology
from ansible_collections.plinth.platform.plugins.module_utils.plain import plain

__metaclass__ = type

DOCUMENTATION = r"""
name: node_topology
short_description: Labels and taints of every node, from the platform spec's node pools
version_added: 0.1.0
author: Plinth contributors
description:
  - Returns, per node (the inventory host name is the Node name), the labels and taints its node
    pools give it. A host in several pools gets the union of their labels and taints.
  - Every host of the platform is listed, with empty labels and taints when no pool names it, so that
    M(plinth.platform.node_topology) removes what Plinth set earlier.
  - On control-plane hosts, kubeadm's own label C(node-role.kubernetes.io/control-plane) and its
    C(NoSchedule) taint are left out. They are kubeadm's, even when a pool repeats them.
options:
  _input:
    description: The output of P(plinth.platform.platform_spec#filter) or the fact M(plinth.platform.validate) sets.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Apply the node pools' labels and taints
  plinth.platform.node_topology:
    nodes: "{{ plinth_spec | plinth.platform.node_topology }}"
"""

RETURN = r"""
_value:
  description: Node name to C(labels) (a dict) and C(taints) (a list of C(key), C(value) when not empty, C(effect)).
  type: dict
  sample:
    gw-1:
      labels: {node.kong.gateway: "true"}
      taints: [{key: node.kong.gateway, value: "true", effect: NoSchedule}]
    worker-1:
      labels: {node.role: worker}
      taints: []
"""


def node_topology(spec):
    if not isinstance(spec, dict) or not all(k in spec for k in ("hosts", "node_pools", "control_plane")):
        raise AnsibleFilterError("node_topology expects the platform spec (plinth.platform.validate's fact), "
                                 "got %s" % type(spec).__name__)
    return topology.node_topology(plain(spec))


class FilterModule(object):

    def filters(self):
        return {"node_topology": node_topology}

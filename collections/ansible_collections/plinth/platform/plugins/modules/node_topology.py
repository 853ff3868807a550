#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: node_topology
short_description: Authoritative node labels and taints for many nodes, by server-side apply
version_added: 0.1.0
description:
  - Takes the labels and taints Plinth wants on every node and brings all nodes there in one
    task. It lists the nodes once, and sends one server-side apply per node that needs a change.
  - Authoritative for what it owns. A label or taint it applied earlier and that is no longer
    wanted is removed from the node. Labels and taints set by anyone else (the kubelet,
    kubeadm, operators) are left alone.
  - Labels are applied with server-side apply under O(field_manager), which tracks per label
    who set it.
  - Node taints are an atomic list to the API server, so whoever applies the list owns all of it.
    The module therefore sends the whole list (the other managers' taints unchanged, plus its
    own). It records its own taints, by key and effect, in the node annotation
    C(plinth.io/managed-taints). Each apply carries the node's C(resourceVersion), so a taint
    that someone else writes at the same moment is never lost. The module then reads the node
    again and retries.
  - Nodes that are not registered make the task fail before any node is changed. The error
    names every missing node. Use O(wait_timeout) to wait for nodes that are joining.
author:
  - Plinth contributors (@plinth)
extends_documentation_fragment:
  - plinth.platform.kube_auth
options:
  nodes:
    description:
      - Node name to the wanted C(labels) (a dict) and C(taints) (a list of C(key), C(value),
        C(effect)), as the P(plinth.platform.node_topology#filter) filter builds them from the spec.
      - Nodes left out are not touched.
    type: dict
    required: true
  field_manager:
    description: Server-side apply field manager that owns the labels and taints this module sets.
    type: str
    default: plinth
  registration_managers:
    description:
      - Field managers that register nodes with labels from Plinth's own join settings (kubeadm
        passes the pool labels to the kubelet). When such a label is no longer wanted, the module
        removes it even though one of these managers holds it too.
      - When any other manager holds such a label, the label stays and is reported under
        C(labels_released).
    type: list
    elements: str
    default: [kubelet]
  wait_timeout:
    description: Seconds to wait for missing nodes to register before failing; C(0) fails at once.
    type: int
    default: 0
attributes:
  check_mode:
    description: Reads the nodes and reports every change it would make without making any.
    support: full
  diff_mode:
    description: Returns the labels and taints of every node that changes, before and after.
    support: full
  platform:
    description: Talks to the Kubernetes API from wherever it runs, usually the controller.
    platforms: all
    support: full
notes:
  - A taint is identified by key and effect, as the API server does. If another manager
    sets a taint that has the same key and effect as one of Plinth's, that taint is Plinth's.
  - Control-plane nodes keep kubeadm's label and taint. The
    P(plinth.platform.node_topology#filter) filter never claims them for Plinth.
seealso:
  - module: kubernetes.core.k8s_taint
"""

EXAMPLES = r"""
- name: Validate the inventory
  plinth.platform.validate:

- name: Apply the node pools' labels and taints
  plinth.platform.node_topology:
    nodes: "{{ plinth_spec | plinth.platform.node_topology }}"
    kubeconfig: "{{ playbook_dir }}/../build/production/admin.conf"
    wait_timeout: 60

- name: Label two nodes by hand
  plinth.platform.node_topology:
    nodes:
      worker-1: {labels: {node.role: worker}, taints: []}
      gw-1:
        labels: {node.kong.gateway: "true"}
        taints: [{key: node.kong.gateway, value: "true", effect: NoSchedule}]
"""

RETURN = r"""
nodes:
  description: Per node that changes (or would change, in check mode), what changes.
  returned: always
  type: dict
  sample:
    gw-1:
      labels_added: {node.kong.gateway: "true"}
      labels_changed: {}
      labels_removed: [old.label]
      labels_released: []
      taints_added: ["node.kong.gateway=true:NoSchedule"]
      taints_removed: []
      adopted: []
unchanged:
  description: How many nodes already were as wanted.
  returned: always
  type: int
diff:
  description: Labels and taints of each changing node, before and after.
  returned: when diff mode is on
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.plinth.platform.plugins.module_utils import kube_api
from ansible_collections.plinth.platform.plugins.module_utils.kube_api import ApiError
from ansible_collections.plinth.platform.plugins.module_utils.topology import plan_node

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
APPLY_ATTEMPTS = 5
WAIT_INTERVAL = 2


def argument_spec():
    return kube_api.argument_spec(
        nodes=dict(type="dict", required=True),
        field_manager=dict(type="str", default="plinth"),
        registration_managers=dict(type="list", elements="str", default=["kubelet"]),
        wait_timeout=dict(type="int", default=0),
    )


class TopologyError(Exception):
    pass


def check_nodes(nodes):
    """Every problem in the ``nodes`` option, each naming its path and value."""
    problems = []
    for name, wanted in sorted(nodes.items()):
        path = "nodes[%r]" % name
        if not isinstance(wanted, dict) or set(wanted) - {"labels", "taints"}:
            problems.append("%s: got %r; must be a dict with labels and taints" % (path, wanted))
            continue
        labels = wanted.get("labels") or {}
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            problems.append("%s.labels: got %r; must map label keys to strings" % (path, labels))
        taints = wanted.get("taints") or []
        if not isinstance(taints, list):
            problems.append("%s.taints: got %r; must be a list" % (path, taints))
            continue
        for index, taint in enumerate(taints):
            if not isinstance(taint, dict) or not taint.get("key") or taint.get("effect") not in TAINT_EFFECTS:
                problems.append("%s.taints[%d]: got %r; needs a key and an effect out of %s"
                                % (path, index, taint, ", ".join(TAINT_EFFECTS)))
    return problems


def wait_for_nodes(api, names, timeout):
    """The live nodes, once all ``names`` are registered or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        live = api.list_nodes()
        missing = sorted(set(names) - set(live))
        if not missing or time.monotonic() >= deadline:
            return live, missing
        time.sleep(WAIT_INTERVAL)


def converge_node(api, node, wanted, params):
    """Apply one node's plan; on a resourceVersion conflict, read the node again and re-plan."""
    for attempt in range(APPLY_ATTEMPTS):
        plan = plan_node(node, wanted, params["field_manager"], params["registration_managers"])
        if not plan["changed"]:
            return plan
        try:
            api.apply_node(plan["apply"], params["field_manager"])
        except ApiError as error:
            if error.status != 409 or attempt == APPLY_ATTEMPTS - 1:
                raise
            node = api.get_node(node["metadata"]["name"])
            continue
        if plan["release"]:
            api.remove_labels(node["metadata"]["name"], plan["release"], params["field_manager"])
        return plan
    return plan


def run(module, api):
    params = module.params
    nodes = params["nodes"]
    live, missing = wait_for_nodes(api, nodes, params["wait_timeout"])
    if missing:
        raise TopologyError("nodes: %s not registered with the API server (waited %ds); "
                            "every node must exist before its labels and taints are applied"
                            % (", ".join(repr(m) for m in missing), params["wait_timeout"]))
    changed_nodes, diff, unchanged = {}, {"before": {}, "after": {}}, 0
    for name in sorted(nodes):
        wanted = nodes[name]
        if module.check_mode:
            plan = plan_node(live[name], wanted, params["field_manager"], params["registration_managers"])
        else:
            plan = converge_node(api, live[name], wanted, params)
        if not plan["changed"]:
            unchanged += 1
            continue
        changed_nodes[name] = plan["changes"]
        diff["before"][name] = plan["before"]
        diff["after"][name] = plan["after"]
    result = dict(changed=bool(changed_nodes), nodes=changed_nodes, unchanged=unchanged)
    if module._diff:
        result["diff"] = diff
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    problems = check_nodes(module.params["nodes"])
    if problems:
        module.fail_json(msg="invalid nodes (%d problem%s):\n  - %s"
                         % (len(problems), "" if len(problems) == 1 else "s", "\n  - ".join(problems)))
    if module.params["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout: got %r; must be 0 or more seconds" % module.params["wait_timeout"])
    kube_api.run_module(module, run, handled=(TopologyError,))


if __name__ == "__main__":
    main()

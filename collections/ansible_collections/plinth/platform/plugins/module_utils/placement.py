# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Where workloads may land: each host's pools, labels and taints, decided once.

The node pools of the spec give their hosts labels and taints; kubeadm gives
every control-plane host a label and a taint of its own.  kubeadm join
registers a node with ``host_labels`` and ``host_taints`` (kubeadm.documents),
node_topology keeps them true on the live Node afterwards (topology), and the
spec and the components tolerate or select the control plane through the
constants here.  Whoever needs to know where a pool's taint comes from ends up
in ``host_taints``.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

# kubeadm labels and taints its control-plane nodes itself (kubeadm init and join).
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
CONTROL_PLANE_TAINT = {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}
# What a pod that must also run on the control plane tolerates.
CONTROL_PLANE_TOLERATION = {"key": CONTROL_PLANE_LABEL, "operator": "Exists", "effect": "NoSchedule"}


def is_control_plane(spec, host):
    return host in spec["control_plane"]["hosts"]


def host_pools(spec, host):
    """Names of the node pools ``host`` belongs to, sorted."""
    return [name for name, pool in sorted(spec["node_pools"].items()) if host in pool["hosts"]]


def host_labels(spec, host):
    """The union of the labels of ``host``'s pools (the spec lets no two pools disagree on one)."""
    labels = {}
    for name in host_pools(spec, host):
        labels.update(spec["node_pools"][name]["labels"])
    return dict(sorted(labels.items()))


def host_taints(spec, host):
    """Every taint ``host`` carries, normalized and sorted: its pools' and, on the control plane, kubeadm's.

    kubeadm replaces its own control-plane taint with whatever list the node
    registers with, so the list must hold that taint too.  The spec lets a
    host sit in two pools only when their taints are the same, and a
    control-plane host only in pools that repeat kubeadm's taint.
    """
    taints = {}
    for name in host_pools(spec, host):
        for taint in spec["node_pools"][name]["taints"]:
            taints[taint_id(taint)] = normalized_taint(taint)
    if is_control_plane(spec, host):
        taints.setdefault(taint_id(CONTROL_PLANE_TAINT), dict(CONTROL_PLANE_TAINT))
    return [taints[key] for key in sorted(taints)]


def kubeadm_marks(spec, host):
    """``(label keys, taint ids)`` kubeadm sets on ``host`` itself: kubeadm's to keep, never Plinth's."""
    if is_control_plane(spec, host):
        return {CONTROL_PLANE_LABEL}, {taint_id(CONTROL_PLANE_TAINT)}
    return set(), set()


def taint_id(taint):
    """A taint's identity, as the API server sees it: key and effect."""
    return (taint["key"], taint["effect"])


def normalized_taint(taint):
    """A taint as the API server returns it: no empty value, no timeAdded unless set."""
    out = {"key": taint["key"], "effect": taint["effect"]}
    if taint.get("value"):
        out["value"] = taint["value"]
    if taint.get("timeAdded"):
        out["timeAdded"] = taint["timeAdded"]
    return out

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Node labels and taints: what the spec wants, and how to get a live Node there.

``node_topology(spec)`` is the desired state, ``{node: {"labels", "taints"}}``:
what placement gives each host, less what kubeadm sets itself.
``plan_node(node, desired, manager)`` compares one live Node object with it and
returns the server-side apply document that makes Plinth's part true while
leaving everybody else's labels and taints alone.

Labels are a granular map under server-side apply: Plinth applies the labels it
wants and the API server removes those it applied earlier and no longer sends.
Taints are an atomic list (``x-kubernetes-list-type: atomic``): whoever applies
the list owns all of it, so Plinth sends the whole list (everyone's taints plus
its own) and records the taints that are its own in the annotation
``plinth.io/managed-taints``, which is how a later run knows which to remove.
A taint is identified by key and effect, as the API server does.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils import placement
from ansible_collections.plinth.platform.plugins.module_utils.placement import normalized_taint, taint_id

__metaclass__ = type

TAINTS_ANNOTATION = "plinth.io/managed-taints"
# Managers that register a Node with the labels kubeadm join gave them from the inventory.
REGISTRATION_MANAGERS = ("kubelet",)


def node_topology(spec):
    """``{node: {"labels": {...}, "taints": [...]}}`` for every host of the platform.

    A host in several pools gets the union of their labels and taints (the spec
    only allows pools whose taints agree to share a host). Every control-plane
    host is listed, with empty labels and taints when no pool names it, so labels
    and taints Plinth set earlier are removed once the inventory drops them.
    kubeadm's own label and taint on a control-plane host stay kubeadm's, even
    when a pool repeats them.
    """
    hosts = set(spec["hosts"])
    for pool in spec["node_pools"].values():
        hosts.update(pool["hosts"])
    nodes = {}
    for host in sorted(hosts):
        labels, taints = placement.kubeadm_marks(spec, host)
        nodes[host] = {
            "labels": dict((k, v) for k, v in placement.host_labels(spec, host).items() if k not in labels),
            "taints": [t for t in placement.host_taints(spec, host) if taint_id(t) not in taints],
        }
    return nodes


def taint_text(taint):
    """``key=value:Effect`` (``key:Effect`` without a value), as kubectl prints taints."""
    value = "=" + taint["value"] if taint.get("value") else ""
    return "%s%s:%s" % (taint["key"], value, taint["effect"])


def format_managed_taints(taints):
    return ",".join(sorted("%s:%s" % taint_id(t) for t in taints))


def parse_managed_taints(text):
    """The (key, effect) pairs in the annotation; taint keys hold no ':' or ','."""
    found = set()
    for item in (text or "").split(","):
        key, sep, effect = item.strip().rpartition(":")
        if sep and key:
            found.add((key, effect))
    return found


def _label_owners(node):
    """``{label key: {manager: operation}}`` from the Node's managedFields."""
    owners = {}
    for entry in node["metadata"].get("managedFields") or []:
        labels = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels") or {}
        for field in labels:
            if field.startswith("f:"):
                owners.setdefault(field[2:], {})[entry.get("manager")] = entry.get("operation")
    return owners


def _owns_taints(node, manager):
    for entry in node["metadata"].get("managedFields") or []:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if entry.get("manager") == manager and entry.get("operation") == "Apply" and "f:taints" in spec:
            return True
    return False


def plan_node(node, desired, manager="plinth", registration_managers=REGISTRATION_MANAGERS):
    """What it takes to bring live ``node`` to ``desired`` ({labels, taints}) for ``manager``.

    Returns a dict:
      changed: whether anything is to be done;
      apply: the server-side apply document (None when nothing is to be applied);
      release: labels to delete with a plain patch after the apply, because a
        registration manager (the kubelet) holds them too and an apply alone
        would only drop Plinth's share;
      changes: labels added/changed/removed, labels released (no longer wanted
        but also set by another manager, so left in place), taints added/removed,
        adopted (already there, now owned by ``manager``);
      before, after: the node's labels and taints.
    """
    meta = node["metadata"]
    labels = dict(meta.get("labels") or {})
    taints = [normalized_taint(t) for t in (node.get("spec") or {}).get("taints") or []]
    want_labels = dict(desired.get("labels") or {})
    want_taints = [normalized_taint(t) for t in desired.get("taints") or []]

    owners = _label_owners(node)
    owned = set(k for k, by in owners.items() if by.get(manager) == "Apply")
    stale = sorted(k for k in owned - set(want_labels) if k in labels)
    # A stale label someone else also holds stays on the node; Plinth only lets go of it.
    # The kubelet is no such someone: it registered the label from Plinth's own join settings.
    others = dict((k, set(owners[k]) - {manager}) for k in stale)
    shared = [k for k in stale if others[k] - set(registration_managers)]
    removed = [k for k in stale if k not in shared]
    release = [k for k in removed if others[k]]

    previous = parse_managed_taints((meta.get("annotations") or {}).get(TAINTS_ANNOTATION))
    wanted_ids = set(taint_id(t) for t in want_taints)
    kept = [t for t in taints if taint_id(t) not in wanted_ids and taint_id(t) not in previous]
    new_taints = _merge_taints(taints, kept, want_taints)

    changes = {
        "labels_added": dict((k, v) for k, v in want_labels.items() if k not in labels),
        "labels_changed": dict((k, v) for k, v in want_labels.items() if k in labels and labels[k] != v),
        "labels_removed": removed,
        "labels_released": shared,
        "taints_added": [taint_text(t) for t in want_taints if t not in taints],
        "taints_removed": [taint_text(t) for t in taints if t not in new_taints],
        "adopted": sorted(["label " + k for k in want_labels if k not in owned and labels.get(k) == want_labels[k]]
                          + ["taint " + taint_text(t) for t in want_taints
                             if t in taints and taint_id(t) not in previous]),
    }
    after_labels = dict((k, v) for k, v in labels.items() if k not in removed)
    after_labels.update(want_labels)
    changed = any(changes.values()) or previous != wanted_ids
    plan = {"changed": changed, "apply": None, "release": release, "changes": changes,
            "before": {"labels": labels, "taints": taints},
            "after": {"labels": after_labels, "taints": new_taints}}
    if changed:
        send_taints = bool(want_taints) or new_taints != taints or _owns_taints(node, manager)
        plan["apply"] = _apply_document(meta["name"], meta.get("resourceVersion"), want_labels,
                                        want_taints, new_taints if send_taints else None)
    return plan


def _merge_taints(current, kept, wanted):
    """Others' taints in their current order, then Plinth's, so an unchanged list compares equal."""
    wanted_by_id = dict((taint_id(t), t) for t in wanted)
    merged = []
    for taint in current:
        if taint in kept:
            merged.append(taint)
        elif taint_id(taint) in wanted_by_id:
            merged.append(wanted_by_id.pop(taint_id(taint)))
    return merged + [t for t in wanted if taint_id(t) in wanted_by_id]


def _apply_document(name, resource_version, labels, own_taints, taints):
    """The apply document; ``taints`` is the whole list to send, or None to leave the list alone.

    Applying the atomic list makes Plinth its owner; once it is, leaving the list out
    of an apply would delete every taint, so the caller sends it whenever Plinth holds it.
    """
    metadata = {"name": name, "labels": labels}
    if resource_version:
        # A precondition: taints are read, merged and written back whole, so a write
        # by someone else in between must fail the apply rather than be lost.
        metadata["resourceVersion"] = resource_version
    if own_taints:
        metadata["annotations"] = {TAINTS_ANNOTATION: format_managed_taints(own_taints)}
    document = {"apiVersion": "v1", "kind": "Node", "metadata": metadata}
    if taints is not None:
        document["spec"] = {"taints": taints}
    return document

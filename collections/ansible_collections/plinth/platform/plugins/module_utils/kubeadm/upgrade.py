# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The upgrade plan: from the versions a cluster runs to the one the inventory pins.

kubeadm moves a cluster one minor release at a time, and every component may
be at most one minor behind the API server it talks to once that moves.  The
plan is read from what runs (each API server's image, each kubelet), not from
what the inventory said last time, so a run that stopped half-way plans the
rest: a cluster with some hosts on the new release and some on the old one is
the normal state between two runs, and both runs agree on the target.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

__metaclass__ = type

VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")


def parse(text):
    """(major, minor, patch) of "v1.36.3" or "1.36.3"; ValueError on anything else."""
    match = VERSION.match(str(text or "").strip())
    if not match:
        raise ValueError("%r is not a Kubernetes release (MAJOR.MINOR.PATCH)" % (text,))
    return tuple(int(part) for part in match.groups())


def _text(version):
    return "%d.%d.%d" % version


def image_tag(image):
    """"v1.36.3" of "registry.k8s.io/kube-apiserver:v1.36.3" (a digest after it is dropped)."""
    name = str(image).split("@", 1)[0]
    return name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""


def running_versions(nodes, apiserver_pods=()):
    """What runs, from the Nodes' kubelets and the API servers' static pods (Kubernetes objects)."""
    found = [{"what": "kubelet on %s" % node["metadata"]["name"],
              "version": node["status"]["nodeInfo"]["kubeletVersion"]} for node in nodes]
    for pod in apiserver_pods:
        container = [c for c in pod["spec"]["containers"] if c["name"] == "kube-apiserver"] or pod["spec"]["containers"]
        found.append({"what": "kube-apiserver on %s" % pod["spec"].get("nodeName", pod["metadata"]["name"]),
                      "version": image_tag(container[0]["image"])})
    return found


def plan(target, running, variable="plinth_kubernetes_version"):
    """What upgrade.yml does, or ValueError naming the variable, the versions and the rule.

    ``running`` lists what runs, each ``{"what": "kubelet on worker-1", "version": "v1.35.4"}``.
    Returns ``{"target", "from", "to_upgrade", "path"}``: ``from`` is the oldest version found,
    ``to_upgrade`` what is not on the target yet, ``path`` [from, target] ([] when there is
    nothing to do).
    """
    try:
        wanted = parse(target)
    except ValueError as exc:
        raise ValueError("%s: %s" % (variable, exc))
    if not running:
        raise ValueError("no running API server or kubelet was found: is the cluster up? (site.yml creates it)")
    found = []
    for item in running:
        try:
            found.append((parse(item["version"]), item["what"]))
        except ValueError as exc:
            raise ValueError("%s runs %s" % (item["what"], exc))
    newer = [(version, what) for version, what in found if version > wanted]
    if newer:
        version, what = max(newer)
        raise ValueError(
            "%s is %s, but %s runs %s: downgrades are not supported (kubeadm cannot move a cluster back; "
            "restore an etcd snapshot taken on the older release instead)"
            % (variable, _text(wanted), what, _text(version)))
    oldest, oldest_what = min(found)
    if oldest[0] != wanted[0]:
        raise ValueError("%s is %s, but %s runs %s: an upgrade stays within one major release"
                         % (variable, _text(wanted), oldest_what, _text(oldest)))
    if wanted[1] - oldest[1] > 1:
        skipped = ", ".join("%d.%d" % (wanted[0], minor) for minor in range(oldest[1] + 1, wanted[1]))
        raise ValueError(
            "%s is %s, but %s runs %s: that skips %s, and kubeadm upgrades one minor release at a time. "
            "Set %s to a %s release, run upgrade.yml, then set %s again"
            % (variable, _text(wanted), oldest_what, _text(oldest), skipped, variable,
               "%d.%d" % (wanted[0], oldest[1] + 1), _text(wanted)))
    behind = sorted(what for version, what in found if version != wanted)
    return {"target": _text(wanted), "from": _text(oldest), "to_upgrade": behind,
            "path": [_text(oldest), _text(wanted)] if behind else []}

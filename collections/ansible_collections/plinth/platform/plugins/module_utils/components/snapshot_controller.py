# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The CSI snapshot controller and the VolumeSnapshot CRDs (snapshot.storage.k8s.io/v1).

kubeadm ships neither: without them no CSI driver can take a snapshot, and
Rook-Ceph's VolumeSnapshotClass has no API to live in.  One chart brings both
(piraeus's ``snapshot-controller``, which packages the external-snapshotter's
CRDs).  It syncs before ``rook-ceph-cluster``, whose VolumeSnapshotClass needs
the CRDs, and after the Prometheus Operator CRDs, which its ServiceMonitor needs.

The chart's conversion webhook only serves VolumeGroupSnapshot objects stored
in their old beta API versions, which a new cluster never holds: it stays off,
so nothing in this namespace has to be reachable from the API server.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RELEASE = "snapshot-controller"
CHART = {"repo": "https://piraeus.io/helm-charts/", "name": "snapshot-controller", "version": "5.2.0"}
WAVE = 10
METRICS_PORT = 8080               # the chart's httpEndpoint: health probes and /metrics

OPTIONS = {
    "replicas": s.Int(2, minimum=1, doc="controller pods (leader election: one works, the others wait)"),
    "resources": s.Resources("10m", "64Mi", "200m", "256Mi"),
}


def selector():
    """The chart's selector labels (the release name contains the chart name, so it is the full name)."""
    return {"app.kubernetes.io/name": "snapshot-controller", "app.kubernetes.io/instance": RELEASE}


def _security():
    # The chart's defaults leave out what Pod Security "restricted" asks for.
    pod = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    container = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 1000,
    }
    return pod, container


def _pdb(replicas):
    # The chart writes this mapping into its PodDisruptionBudget's spec; empty means no budget.
    if replicas < 2:
        return {}
    return {"minAvailable": common.pdb_min_available(replicas)}


def values(spec, settings):
    replicas = settings["replicas"]
    pod_security, container_security = _security()
    controller = dict(common.placement(spec, settings["pool"]), **{
        "replicaCount": replicas,
        "resources": copy.deepcopy(settings["resources"]),
        "podSecurityContext": pod_security,
        "securityContext": container_security,
        "topologySpreadConstraints": [common.spread(selector())] if replicas > 1 else [],
        "pdb": _pdb(replicas),
        "serviceMonitor": {"create": common.enabled(spec, "monitoring")},
    })
    return {
        "installCRDs": True,
        "controller": controller,
        "webhook": {"enabled": False},
        # The class is Rook's to declare, next to the StorageClass it snapshots.
        "volumeSnapshotClasses": [],
        "volumeGroupSnapshotClasses": [],
    }


def manifests(spec, settings):
    return common.controller_policies(spec, settings["namespace"], selector(), METRICS_PORT)


def check(spec, settings, errors, path):
    if settings["replicas"] > 1:
        common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])


COMPONENT = Component(
    key="snapshot_controller", title="CSI snapshot controller", namespace="snapshot-controller",
    project="infra", pool="worker", enabled=True, pod_security="restricted",
    options=OPTIONS,
    check=check,
    releases=[Release(RELEASE, WAVE, CHART, values=values, manifests=manifests)],
    doc="CSI snapshot controller and the VolumeSnapshot CRDs: Rook-Ceph's VolumeSnapshotClass and "
        "CloudNativePG's volume snapshot backups need them.",
)

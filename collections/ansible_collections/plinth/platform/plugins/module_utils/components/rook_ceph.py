# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Rook-Ceph: the operator, the Ceph-CSI drivers and one Ceph cluster on the storage pool.

Three releases, in this order (Rook v1.20's documented upgrade order):

* ``rook-ceph``: the Rook operator, its CRDs and the ceph-csi-operator subchart.
* ``ceph-csi-drivers``: the CSI ``Driver``/``OperatorConfig`` resources.  Since
  Rook v1.20 the CSI settings no longer live in the operator chart; without this
  chart no volume can be provisioned or mounted.
* ``rook-ceph-cluster``: the CephCluster, its block pool and StorageClasses.

Every Ceph daemon (MON, MGR, OSD, RGW, MDS), the operators and the CSI
provisioners run on the storage pool.  Only the CSI node plugins run everywhere,
since every node that mounts a volume needs one.

The block StorageClass gets a VolumeSnapshotClass (the rook-ceph-cluster
chart's own), whose CRD and controller come from the ``snapshot_controller``
component.

No NetworkPolicies in the rook-ceph namespace, by design:

* Ceph's daemons talk to each other on ports the operator picks at runtime
  (MONs on 3300 and 6789, every OSD, MGR and MDS on some port of 6800-7300),
  and the CSI node plugins and kernel RBD/CephFS clients that reach them run
  on the host network of every node: a policy can name them only by node
  addresses, which change with the inventory and with every added node.
* A policy that selects a pod makes it deny whatever that policy does not
  allow: a Prometheus-only ingress rule on the MGR (metrics on 9283) would cut
  off the OSDs' and MONs' reports to it, the dashboard on 8443 and the
  ``ceph`` CLI of the toolbox.  Without any policy, Prometheus reaches the MGR
  and the Ceph exporters, and PostgreSQL reaches the RGW, with no rule here.
* The operator and the CSI provisioners need the API server, every MON and
  every OSD; a deny-by-default namespace would have to mirror Ceph's whole
  port map and would break on the next Ceph release that moves a port.
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

ROOK_REPO = "https://charts.rook.io/release"
CSI_REPO = "https://ceph.github.io/ceph-csi-operator"

BLOCK_POOL = "ceph-blockpool"
FILESYSTEM = "ceph-filesystem"
FILESYSTEM_STORAGE_CLASS = "rook-cephfs"
OBJECT_STORE = "ceph-objectstore"
OBJECT_STORAGE_CLASS = "rook-ceph-bucket"
RGW_SERVICE_PORT = 80             # the gateway port of the object store's Service
RGW_POD_PORT = 8080               # what Rook's RGW containers listen on behind that port
CSI_CONTROLLER_REPLICAS = 2

# The CSI drivers read their images from this ConfigMap, written by the rook-ceph chart.
CSI_IMAGE_SET = "rook-csi-operator-image-set-configmap"

# Short kernel names (sdb, nvme0n1) or stable udev paths (/dev/disk/by-id/...).
DEVICE = re.compile(r"^(/dev/[A-Za-z0-9_.:/+-]+|[A-Za-z0-9][A-Za-z0-9_.:-]*)$")


def _device(value):
    if not DEVICE.match(value):
        return "must be a device name like sdb or nvme0n1, or a path like /dev/disk/by-id/..."
    return None


OPTIONS = {
    "mon_count": s.Int(3, minimum=1, maximum=9,
                       doc="Ceph monitors, one per storage host; odd, so a majority keeps quorum."),
    "mgr_count": s.Int(2, minimum=1, maximum=5,
                       doc="Ceph managers (one active, the others standby), one per storage host."),
    "pool_size": s.Int(3, minimum=1,
                       doc="Copies of every object in each replicated pool; failure domain is the host."),
    "devices": s.List(s.Str(checks=[_device]), default=[],
                      doc="Raw disks used for OSDs on every storage host; empty uses every empty disk."),
    "storage_class": s.Str("rook-ceph-block", checks=[s.dns_subdomain],
                           doc="Name of the RBD block StorageClass, the cluster's default StorageClass."),
    "filesystem": s.Bool(False, doc="CephFS filesystem and its StorageClass rook-cephfs (ReadWriteMany)."),
    "object_store": s.Bool(False, doc="RGW object store and its bucket StorageClass rook-ceph-bucket."),
    "dashboard": s.Bool(True, doc="Ceph dashboard served by the active MGR (HTTPS, in-cluster Service)."),
    "toolbox": s.Bool(False, doc="rook-ceph-tools pod with the ceph CLI, for troubleshooting."),
    "volume_snapshot_class": s.Str("ceph-block", nullable=True, checks=[s.dns_subdomain],
                                   doc="VolumeSnapshotClass of the block StorageClass, the cluster's default "
                                       "one (needs plinth_components.snapshot_controller); null for none."),
    "snapshot_deletion_policy": s.Str("Delete", choices=("Delete", "Retain"),
                                      doc="What deleting a VolumeSnapshot does to its RBD snapshot: Delete "
                                          "frees it, Retain keeps it until removed by hand."),
}


def _fresh(data):
    """An unshared copy: a sub-dict used twice would become a YAML anchor in the values file."""
    return json.loads(json.dumps(data))


# --- placement -----------------------------------------------------------------

def _storage_pool(settings):
    return settings["pool"]


def _placement(spec, settings):
    """Rook ``Placement``: required node affinity on the storage pool, and its taints tolerated."""
    placement = dict(common.node_affinity(spec, _storage_pool(settings)))
    placement["tolerations"] = common.tolerations(spec, _storage_pool(settings))
    return placement


def _all_pool_tolerations(spec):
    """Tolerations for every pool's taints: CSI node plugins must reach every node that mounts volumes."""
    found = []
    for name in sorted(spec["node_pools"]):
        for toleration in common.tolerations(spec, name):
            if toleration not in found:
                found.append(toleration)
    return found


def _storage_hosts(spec, settings):
    pool = spec["node_pools"].get(_storage_pool(settings)) or {}
    return len(pool.get("hosts") or [])


def _monitoring(spec):
    return common.enabled(spec, "monitoring")


# --- rook-ceph (operator) ------------------------------------------------------

def operator_values(spec, settings):
    # The operators sit on the storage pool with the daemons they manage: the
    # whole component then lives on the nodes reserved for it, and the worker
    # pool carries no privileged storage machinery.
    placement = common.placement(spec, _storage_pool(settings))
    return _fresh({
        "nodeSelector": placement["nodeSelector"],
        "tolerations": placement["tolerations"],
        "monitoring": {"enabled": _monitoring(spec)},
        "csi": {"installCsiOperator": True},
        "ceph-csi-operator": {
            "controllerManager": {
                "nodeSelector": placement["nodeSelector"],
                "tolerations": placement["tolerations"],
            },
        },
    })


# --- ceph-csi-drivers ------------------------------------------------------------

def _driver_name(settings, kind):
    # Rook names its provisioners after the operator namespace; StorageClasses point at them.
    return "%s.%s.csi.ceph.com" % (settings["namespace"], kind)


def _csi_controller_replicas(spec, settings):
    # The ceph-csi-operator adds a required one-per-host anti-affinity to the provisioner.
    return max(1, min(CSI_CONTROLLER_REPLICAS, _storage_hosts(spec, settings)))


def _csi_plugins(spec, settings):
    node = {"tolerations": _all_pool_tolerations(spec)}
    controller = {
        "replicas": _csi_controller_replicas(spec, settings),
        "affinity": common.node_affinity(spec, _storage_pool(settings)),
        "tolerations": common.tolerations(spec, _storage_pool(settings)),
    }
    return node, controller


def _driver(spec, settings, kind, enabled):
    node, controller = _csi_plugins(spec, settings)
    # The chart writes each driver's tolerations and replicas explicitly, so an
    # empty driver value would hide the OperatorConfig defaults: repeat them here.
    return {
        "enabled": enabled,
        "name": _driver_name(settings, kind),
        "nodePlugin": node,
        "controllerPlugin": controller,
    }


def csi_values(spec, settings):
    node, controller = _csi_plugins(spec, settings)
    return _fresh({
        "operatorConfig": {
            "namespace": settings["namespace"],
            "driverSpecDefaults": {
                "imageSet": {"name": CSI_IMAGE_SET},
                "nodePlugin": dict(node, priorityClassName="system-node-critical"),
                "controllerPlugin": dict(controller, priorityClassName="system-cluster-critical"),
            },
        },
        "drivers": {
            "rbd": _driver(spec, settings, "rbd", True),
            "cephfs": _driver(spec, settings, "cephfs", settings["filesystem"]),
            "nfs": {"enabled": False, "name": _driver_name(settings, "nfs")},
            "nvmeof": {"enabled": False, "name": _driver_name(settings, "nvmeof")},
        },
    })


def csi_manifests(spec, settings):
    """PodDisruptionBudgets for the CSI provisioners, which the ceph-csi-operator does not make."""
    replicas = _csi_controller_replicas(spec, settings)
    if replicas < 2:
        return []
    kinds = ["rbd"] + (["cephfs"] if settings["filesystem"] else [])
    budgets = []
    for kind in kinds:
        app = "%s-ctrlplugin" % _driver_name(settings, kind)
        budgets.append(common.pod_disruption_budget("csi-%splugin-provisioner" % kind, settings["namespace"],
                                                    {"app": app}, replicas))
    return budgets


# --- rook-ceph-cluster -----------------------------------------------------------

def _csi_secrets(kind, namespace):
    """The csi.storage.k8s.io/* parameters: without them the provisioner cannot talk to Ceph."""
    provisioner, node = "rook-csi-%s-provisioner" % kind, "rook-csi-%s-node" % kind
    params = {}
    for step, secret in (("provisioner", provisioner), ("controller-expand", provisioner),
                         ("controller-publish", provisioner), ("node-stage", node)):
        params["csi.storage.k8s.io/%s-secret-name" % step] = secret
        params["csi.storage.k8s.io/%s-secret-namespace" % step] = namespace
    params["csi.storage.k8s.io/fstype"] = "ext4"
    return params


def _replicated(settings):
    size = settings["pool_size"]
    # Refuse an accidental size 1 later on, unless one copy is what was asked for.
    return {"size": size, "requireSafeReplicaSize": size > 1}


def _storage_class(name, default, parameters):
    return {
        "enabled": True,
        "name": name,
        "isDefault": default,
        "reclaimPolicy": "Delete",
        "allowVolumeExpansion": True,
        "volumeBindingMode": "Immediate",
        "annotations": {},
        "labels": {},
        "mountOptions": [],
        "parameters": parameters,
    }


def _block_pools(settings):
    parameters = dict(_csi_secrets("rbd", settings["namespace"]), imageFormat="2", imageFeatures="layering")
    return [{
        "name": BLOCK_POOL,
        "spec": {"failureDomain": "host", "replicated": _replicated(settings)},
        "storageClass": dict(_storage_class(settings["storage_class"], True, parameters), allowedTopologies=[]),
    }]


def _filesystems(spec, settings):
    if not settings["filesystem"]:
        return []
    storage_class = _storage_class(FILESYSTEM_STORAGE_CLASS, False, _csi_secrets("cephfs", settings["namespace"]))
    storage_class["pool"] = "data0"
    return [{
        "name": FILESYSTEM,
        "spec": {
            "metadataPool": {"failureDomain": "host", "replicated": _replicated(settings)},
            "dataPools": [{"name": "data0", "failureDomain": "host", "replicated": _replicated(settings)}],
            "metadataServer": {
                "activeCount": 1,
                "activeStandby": True,
                "placement": _placement(spec, settings),
                "priorityClassName": "system-cluster-critical",
                "resources": {"requests": {"cpu": "1000m", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
            },
        },
        "storageClass": storage_class,
    }]


def _object_stores(spec, settings):
    if not settings["object_store"]:
        return []
    pool = {"failureDomain": "host", "replicated": _replicated(settings)}
    return [{
        "name": OBJECT_STORE,
        "spec": {
            "metadataPool": dict(pool),
            "dataPool": dict(pool, parameters={"bulk": "true"}),
            "preservePoolsOnDelete": True,
            "gateway": {
                "port": RGW_SERVICE_PORT,
                "instances": 2,
                "placement": _placement(spec, settings),
                "priorityClassName": "system-cluster-critical",
                "resources": {"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
            },
        },
        # Bucket claims name this class explicitly; it is never the default class.
        "storageClass": {
            "enabled": True,
            "name": OBJECT_STORAGE_CLASS,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "annotations": {},
            "labels": {},
            "parameters": {},
        },
        "ingress": {"enabled": False},
        "route": {"enabled": False},
    }]


def _volume_snapshot_class(settings):
    name = settings["volume_snapshot_class"]
    if not name:
        return {"enabled": False}
    # The chart fills in the RBD driver, the cluster ID and the snapshotter secret.
    return {"enabled": True, "name": name, "isDefault": True,
            "deletionPolicy": settings["snapshot_deletion_policy"],
            "annotations": {}, "labels": {}, "parameters": {}}


def volume_snapshot_class(spec):
    """Name of the block StorageClass's VolumeSnapshotClass, or None when Rook makes none."""
    if not common.enabled(spec, "rook_ceph"):
        return None
    return spec["components"]["rook_ceph"]["volume_snapshot_class"]


def object_store_enabled(spec):
    return common.enabled(spec, "rook_ceph") and spec["components"]["rook_ceph"]["object_store"]


def object_store_endpoint(spec):
    """In-cluster S3 URL of the object store (Rook names its Service rook-ceph-rgw-<store>)."""
    return "http://rook-ceph-rgw-%s.%s.svc:%d" % (OBJECT_STORE, spec["components"]["rook_ceph"]["namespace"],
                                                  RGW_SERVICE_PORT)


def rgw_labels():
    """Labels Rook puts on every RGW pod of the object store."""
    return {"app": "rook-ceph-rgw", "rook_object_store": OBJECT_STORE}


def _storage(settings):
    if settings["devices"]:
        return {"useAllNodes": True, "useAllDevices": False,
                "devices": [{"name": name} for name in settings["devices"]]}
    return {"useAllNodes": True, "useAllDevices": True}


def _monitoring_labels():
    # Matches kube-prometheus-stack's default rule/monitor selectors (release label).
    return {"release": "kube-prometheus-stack"}


def cluster_values(spec, settings):
    placement = _placement(spec, settings)
    cluster_spec = {
        "mon": {"count": settings["mon_count"], "allowMultiplePerNode": False},
        "mgr": {"count": settings["mgr_count"], "allowMultiplePerNode": False},
        "dashboard": {"enabled": settings["dashboard"], "ssl": True},
        # `all` reaches MON, MGR, OSD, OSD prepare and cleanup pods; RGW and MDS
        # carry their own placement in the object store and filesystem specs.
        "placement": {"all": placement},
        "storage": _storage(settings),
        "disruptionManagement": {"managePodBudgets": True, "osdMaintenanceTimeout": 30},
    }
    monitoring = {"enabled": False, "createPrometheusRules": False}
    if _monitoring(spec):
        monitoring = {"enabled": True, "createPrometheusRules": True,
                      "prometheusRule": {"labels": _monitoring_labels()}}
        cluster_spec["labels"] = {"monitoring": _monitoring_labels()}
    return _fresh({
        "operatorNamespace": settings["namespace"],
        "monitoring": monitoring,
        "toolbox": {"enabled": settings["toolbox"], "tolerations": placement["tolerations"],
                    "affinity": common.node_affinity(spec, _storage_pool(settings))},
        "cephClusterSpec": cluster_spec,
        "cephBlockPools": _block_pools(settings),
        "cephBlockPoolsVolumeSnapshotClass": _volume_snapshot_class(settings),
        "cephFileSystems": _filesystems(spec, settings),
        "cephObjectStores": _object_stores(spec, settings),
    })


# --- cross-checks ----------------------------------------------------------------

def check(spec, settings, errors, path):
    if settings["mon_count"] >= 1 and settings["mon_count"] % 2 == 0:
        errors.add(path + ".mon_count", settings["mon_count"],
                   "must be odd (1, 3, 5, ...) so that a majority of MONs keeps quorum")
    common.check_fits_pool(spec, settings, errors, path + ".mon_count", settings["mon_count"], what="MONs")
    common.check_fits_pool(spec, settings, errors, path + ".mgr_count", settings["mgr_count"], what="MGRs")
    common.check_fits_pool(spec, settings, errors, path + ".pool_size", settings["pool_size"],
                           what="copies of each Ceph pool (failure domain host)")
    if settings["volume_snapshot_class"] and not common.enabled(spec, "snapshot_controller"):
        errors.add(path + ".volume_snapshot_class", settings["volume_snapshot_class"],
                   "a VolumeSnapshotClass needs the snapshot CRDs and controller: enable "
                   "plinth_components.snapshot_controller, or set volume_snapshot_class: null")


COMPONENT = Component(
    key="rook_ceph", title="Rook-Ceph", namespace="rook-ceph", project="infra", pool="storage",
    enabled=True, pod_security="privileged",
    options=OPTIONS,
    check=check,
    releases=[
        # The ceph-csi-operator CRDs exceed the 256 KiB last-applied annotation of client-side apply.
        Release("rook-ceph", 10, {"repo": ROOK_REPO, "name": "rook-ceph", "version": "v1.20.6"},
                values=operator_values, server_side_apply=True),
        Release("ceph-csi-drivers", 15, {"repo": CSI_REPO, "name": "ceph-csi-drivers", "version": "1.0.4"},
                values=csi_values, manifests=csi_manifests, chart_option="csi_chart"),
        Release("rook-ceph-cluster", 20, {"repo": ROOK_REPO, "name": "rook-ceph-cluster", "version": "v1.20.6"},
                values=cluster_values, chart_option="cluster_chart"),
    ],
    doc="Rook operator, Ceph-CSI drivers and a Ceph cluster on the storage pool; "
        "rook-ceph-block is the default StorageClass.",
)

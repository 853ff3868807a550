# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Scheduled backups of a CloudNativePG ``Cluster``: to Ceph's object store, or as volume snapshots.

Two methods, picked per cluster:

* ``object_store``: base backups and the WAL archive go to a bucket of the
  Rook-Ceph object store, claimed by an ObjectBucketClaim whose generated Secret
  holds the S3 keys.  The Cluster's ``spec.backup.barmanObjectStore`` (the
  operator's built-in Barman Cloud support, deprecated since CloudNativePG 1.26
  but still served by the 1.30 operator of chart 0.29.0; the Barman Cloud
  plugin would need cert-manager, which Plinth does not run) points at it, and
  its ``retentionPolicy`` lets the operator delete what falls out of the window.
  The default ``system`` PostgreSQL images carry barman-cloud; a ``minimal`` or
  ``standard`` image set in ``database.image`` does not.
* ``volume_snapshot``: CSI snapshots of the instances' volumes through a
  VolumeSnapshotClass.  The operator applies no retention to them, so a CronJob
  deletes the Backup objects older than the retention (never the newest
  completed one); each Backup owns its VolumeSnapshots, which go with it.  The
  job may read and delete Backups of its own namespace and nothing else.

``auto`` picks the object store when Rook-Ceph serves one, else volume
snapshots when a VolumeSnapshotClass is known, else takes no backup.

Restoring is declarative too: a Cluster created with ``restore_from`` set (the
name of a Backup object of either method) starts from that backup instead of
an empty database, optionally replayed up to a point in time from the object
store's WAL archive.  The operator reads the bootstrap section only when it
creates a Cluster, so a restore goes into a Cluster with a new name.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import common, rook_ceph

__metaclass__ = type

CNPG_API = "postgresql.cnpg.io/v1"
METHODS = ("auto", "object_store", "volume_snapshot")
CNPG_METHOD = {"object_store": "barmanObjectStore", "volume_snapshot": "volumeSnapshot"}
# The operator's schedules carry a seconds field in front of the five of a CronJob.
SCHEDULE = re.compile(r"^\S+( \S+){5}$")
RETENTION = re.compile(r"^([1-9][0-9]*)([dwm])$")
# A month counts 30 days, as Barman counts it for the object store.
UNIT_SECONDS = {"d": 86400, "w": 7 * 86400, "m": 30 * 86400}
PRUNE_SCHEDULE = "30 */6 * * *"
BUCKET_NAME_MAX = 63
BUCKET_SUFFIX = "-backups"


def _schedule(value):
    if not SCHEDULE.match(value):
        return ("must be a six-field cron expression, seconds first, like \"0 0 3 * * *\" "
                "(CloudNativePG's format, not a CronJob's)")
    return None


def _retention(value):
    if not RETENTION.match(value):
        return "must be a number of days, weeks or months like 14d, 2w or 3m"
    return None


BACKUP = s.Dict({
    "enabled": s.Bool(True, doc="scheduled backups of the PostgreSQL Cluster"),
    "method": s.Str("auto", choices=METHODS,
                    doc="object_store: Barman to the Rook-Ceph object store (needs rook_ceph.object_store); "
                        "volume_snapshot: CSI snapshots; auto: the object store when there is one, else "
                        "volume snapshots when a VolumeSnapshotClass is known, else no backup"),
    "schedule": s.Str("0 0 3 * * *", checks=[_schedule],
                      doc="when backups run: six cron fields, seconds first (CloudNativePG's format)"),
    "retention": s.Str("14d", checks=[_retention],
                       doc="how long backups are kept (d, w or m; a month is 30 days)"),
    "volume_snapshot_class": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                                   doc="VolumeSnapshotClass of volume snapshot backups; default: "
                                       "rook_ceph.volume_snapshot_class when the database is on Rook's "
                                       "block StorageClass"),
})


# --- which method ---------------------------------------------------------------

def snapshot_class(spec, backup, storage_class):
    """The VolumeSnapshotClass for volumes of ``storage_class``, or None when none is known."""
    if backup["volume_snapshot_class"]:
        return backup["volume_snapshot_class"]
    rook_class = rook_ceph.volume_snapshot_class(spec)
    if rook_class and storage_class == spec["components"]["rook_ceph"]["storage_class"]:
        return rook_class
    return None


def method(spec, backup, storage_class):
    """``object_store``, ``volume_snapshot`` or None (no backup)."""
    if not backup["enabled"]:
        return None
    if backup["method"] != "auto":
        return backup["method"]
    if rook_ceph.object_store_enabled(spec):
        return "object_store"
    if snapshot_class(spec, backup, storage_class):
        return "volume_snapshot"
    return None


def retention_seconds(retention):
    count, unit = RETENTION.match(retention).groups()
    return int(count) * UNIT_SECONDS[unit]


def bucket_name(cluster_name):
    return cluster_name + BUCKET_SUFFIX


# --- the Cluster's side -----------------------------------------------------------

def cluster_backup(spec, cluster_name, backup, storage_class):
    """The Cluster's ``spec.backup``, or None when it takes no backup."""
    chosen = method(spec, backup, storage_class)
    if chosen == "object_store":
        claim = bucket_name(cluster_name)
        keys = dict((field, {"name": claim, "key": key}) for field, key in (
            ("accessKeyId", "AWS_ACCESS_KEY_ID"), ("secretAccessKey", "AWS_SECRET_ACCESS_KEY")))
        return {
            "retentionPolicy": backup["retention"],
            "barmanObjectStore": {
                # A fixed bucket name: the path must be known when the Cluster is written.
                "destinationPath": "s3://%s/" % claim,
                "endpointURL": rook_ceph.object_store_endpoint(spec),
                "s3Credentials": keys,
                "wal": {"compression": "gzip"},
                "data": {"compression": "gzip"},
            },
        }
    if chosen == "volume_snapshot":
        # Each Backup owns its snapshots, so the pruning job's deletions free them.
        return {"volumeSnapshot": {"className": snapshot_class(spec, backup, storage_class),
                                   "snapshotOwnerReference": "backup"}}
    return None


def bootstrap(database, owner, secret, restore_from, target_time):
    """The Cluster's ``spec.bootstrap``: a new database, or a recovery from the Backup ``restore_from``."""
    owned = {"database": database, "owner": owner, "secret": {"name": secret}}
    if not restore_from:
        return {"initdb": owned}
    recovery = dict(owned, backup={"name": restore_from})
    if target_time:
        recovery["recoveryTarget"] = {"targetTime": target_time}
    return {"recovery": recovery}


# --- objects beside the Cluster -----------------------------------------------------

def bucket_claim(cluster_name, namespace):
    """The bucket of the Cluster's object store backups; its Secret carries the S3 keys."""
    name = bucket_name(cluster_name)
    # Argo CD must never delete it: the bucket, and every backup in it, would go with it.
    annotations = {"argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}
    return {
        "apiVersion": "objectbucket.io/v1alpha1",
        "kind": "ObjectBucketClaim",
        "metadata": common.metadata(name, namespace, annotations=annotations),
        "spec": {"bucketName": name, "storageClassName": rook_ceph.OBJECT_STORAGE_CLASS},
    }


def scheduled_backup(cluster_name, namespace, backup, chosen):
    return {
        "apiVersion": CNPG_API,
        "kind": "ScheduledBackup",
        "metadata": common.metadata(cluster_name, namespace),
        "spec": {
            "schedule": backup["schedule"],
            "cluster": {"name": cluster_name},
            "method": CNPG_METHOD[chosen],
            # A first backup right away, so a new cluster is not unprotected until the schedule fires.
            "immediate": True,
            # Backups outlive a changed or removed schedule; retention alone removes them.
            "backupOwnerReference": "none",
        },
    }


PRUNE_SCRIPT = r"""set -euo pipefail
kubectl get backups.postgresql.cnpg.io --namespace "$NAMESPACE" --output json \
  | jq --raw-output --arg cluster "$CLUSTER" --argjson keep "$KEEP_SECONDS" '
      [.items[] | select(.spec.cluster.name == $cluster and .spec.method == "volumeSnapshot")]
      | ([.[] | select(.status.phase == "completed")]
         | sort_by(.metadata.creationTimestamp) | last | .metadata.name) as $newest
      | .[] | select(.metadata.name != $newest)
      | select((.metadata.creationTimestamp | fromdateiso8601) < (now - $keep))
      | .metadata.name' \
  | while read -r backup; do
      kubectl delete backups.postgresql.cnpg.io "$backup" --namespace "$NAMESPACE" --wait=false
    done
"""


def pruner_name(cluster_name):
    return "%s-backup-retention" % cluster_name


def pruner_labels(cluster_name):
    return {"app.kubernetes.io/name": "backup-retention", "app.kubernetes.io/instance": cluster_name}


def kubectl_image(spec):
    """registry.k8s.io/kubectl at the cluster's own version (it carries bash and jq)."""
    return "registry.k8s.io/kubectl:v%s" % spec["kubernetes_version"].lstrip("v")


def pruner(spec, cluster_name, namespace, backup, pool):
    """ServiceAccount, Role, RoleBinding and CronJob that apply the retention to volume snapshot backups."""
    name = pruner_name(cluster_name)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": common.metadata(name, namespace),
        "rules": [{"apiGroups": ["postgresql.cnpg.io"], "resources": ["backups"],
                   "verbs": ["get", "list", "delete"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": common.metadata(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": common.metadata(name, namespace)}
    return [account, role, binding, _prune_job(spec, cluster_name, namespace, backup, pool)]


def _prune_container(spec, cluster_name, namespace, backup):
    env = {"NAMESPACE": namespace, "CLUSTER": cluster_name,
           "KEEP_SECONDS": str(retention_seconds(backup["retention"])),
           # kubectl keeps its discovery cache under $HOME; the root filesystem is read-only.
           "HOME": "/tmp"}
    return {
        "name": "prune",
        "image": kubectl_image(spec),
        "command": ["/bin/bash", "-c", PRUNE_SCRIPT],
        "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _prune_job(spec, cluster_name, namespace, backup, pool):
    name = pruner_name(cluster_name)
    pod = dict(common.placement(spec, pool), **{
        "serviceAccountName": name,
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_prune_container(spec, cluster_name, namespace, backup)],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    })
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": common.metadata(name, namespace),
        "spec": {
            "schedule": PRUNE_SCHEDULE,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {
                "backoffLimit": 2,
                "template": {"metadata": {"labels": pruner_labels(cluster_name)}, "spec": pod},
            }},
        },
    }


def objects(spec, cluster_name, namespace, backup, storage_class, pool):
    """Everything beside the Cluster that its backups need: before it, and after it."""
    chosen = method(spec, backup, storage_class)
    if chosen is None:
        return [], []
    before = [bucket_claim(cluster_name, namespace)] if chosen == "object_store" else []
    after = [scheduled_backup(cluster_name, namespace, backup, chosen)]
    if chosen == "volume_snapshot":
        after += pruner(spec, cluster_name, namespace, backup, pool)
    return before, after


def object_store_egress(spec, cluster_labels, namespace):
    """Egress from the instances to the RGW pods (the port behind the Service's)."""
    peer = common.namespace_peer(spec["components"]["rook_ceph"]["namespace"], rook_ceph.rgw_labels())
    return common.network_policy("allow-postgres-to-object-store", namespace, cluster_labels, egress=[{
        "to": [peer], "ports": common.tcp_ports(rook_ceph.RGW_POD_PORT)}])


# --- cross-checks -------------------------------------------------------------------

def check(spec, backup, cluster_name, storage_class, errors, path, cluster_path):
    """Checks of ``backup`` (at ``path``) for the Cluster named at ``cluster_path``."""
    if not backup["enabled"]:
        return
    if backup["method"] == "object_store":
        if not rook_ceph.object_store_enabled(spec):
            errors.add(path + ".method", "object_store", "needs the Rook-Ceph object store: "
                       "plinth_components.rook_ceph.enabled and rook_ceph.object_store: true")
    if backup["method"] == "volume_snapshot" and not snapshot_class(spec, backup, storage_class):
        errors.add(path + ".method", "volume_snapshot", "needs a VolumeSnapshotClass for the database's "
                   "StorageClass: set volume_snapshot_class, or keep the database on Rook-Ceph's block "
                   "StorageClass with rook_ceph.volume_snapshot_class set")
    if method(spec, backup, storage_class) == "object_store" and \
            len(bucket_name(cluster_name)) > BUCKET_NAME_MAX:
        errors.add(cluster_path, cluster_name, "names the backup bucket %r, longer than S3's %d characters; "
                   "object store backups need a shorter name" % (bucket_name(cluster_name), BUCKET_NAME_MAX))

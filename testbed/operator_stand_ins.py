#!/usr/bin/env python3
"""Stand-ins for the operators whose custom resources the platform's manifests create but
that cannot run on a test API server: they report the status the real operator reports
once it has done its work, so Argo CD's health checks see what they would see in a cluster.

    python -m testbed.operator_stand_ins up --dir DIR --cluster CLUSTER_DIR     start the loop in the background
    python -m testbed.operator_stand_ins down --dir DIR                         stop it

The loop reads, every two seconds, through the test cluster's admin credentials
(testbed/testcluster.py's CLUSTER_DIR):

* SecretStore and ClusterSecretStore (external-secrets.io/v1): Ready, as External Secrets
  Operator reports a store it can use;
* ExternalSecret: Ready when the SecretStore it names exists in its own namespace, or the
  ClusterSecretStore it names exists and its conditions admit that namespace, else
  Ready=False with the reason ESO would give (a store that the platform put in the wrong
  namespace, named wrong or closed to the namespace stays unhealthy);
* Cluster (postgresql.cnpg.io/v1): phase "Cluster in healthy state", as CloudNativePG
  reports once its instances run;
* PersistentVolumeClaim of a StorageClass no provisioner here serves (Rook's CSI driver):
  a PersistentVolume made for it, as the provisioner would make one, which
  kube-controller-manager's binder then binds (a Pending claim keeps its Application
  Progressing).

It only writes status subresources and only when they differ. Nothing here decides
whether the manifests are right beyond the store reference: the APIs are served by the
stand-in charts with an open schema.
"""

import argparse
import json
import os
import sys
import time

from airgap import launch, processes
from testbed import testcluster  # the API client

STATE_FILE = "state.json"
INTERVAL = 2
ESO = "/apis/external-secrets.io/v1"
CNPG = "/apis/postgresql.cnpg.io/v1"
CNPG_HEALTHY = "Cluster in healthy state"


def ready(status, reason, message):
    return {"conditions": [{"type": "Ready", "status": status, "reason": reason, "message": message}]}


def wanted_statuses(api):
    """(status path, wanted status) for every object the stand-ins answer for."""
    found = []
    stores = items(api, ESO + "/secretstores")
    for store in stores:
        meta = store["metadata"]
        found.append((ESO + "/namespaces/%s/secretstores/%s/status" % (meta["namespace"], meta["name"]),
                      ready("True", "Valid", "store validated"), store))
    cluster_stores = items(api, ESO + "/clustersecretstores")
    for store in cluster_stores:
        found.append((ESO + "/clustersecretstores/%s/status" % store["metadata"]["name"],
                      ready("True", "Valid", "store validated"), store))
    # A SecretStore serves the ExternalSecrets of its own namespace only.
    store_keys = set((s["metadata"]["namespace"], s["metadata"]["name"]) for s in stores)
    admitted = dict((s["metadata"]["name"], admitted_namespaces(s)) for s in cluster_stores)
    for secret in items(api, ESO + "/externalsecrets"):
        ref = (secret.get("spec") or {}).get("secretStoreRef") or {}
        meta = secret["metadata"]
        if serves(ref, meta["namespace"], store_keys, admitted):
            status = ready("True", "SecretSynced", "secret synced")
        else:
            status = ready("False", "SecretSyncedError", "could not get %s %r" % (ref.get("kind"), ref.get("name")))
        found.append((ESO + "/namespaces/%s/externalsecrets/%s/status" % (meta["namespace"], meta["name"]),
                      status, secret))
    for cluster in items(api, CNPG + "/clusters"):
        meta = cluster["metadata"]
        status = dict(ready("True", "ClusterIsReady", "cluster is ready"), phase=CNPG_HEALTHY,
                      phaseReason="stand-in")
        found.append((CNPG + "/namespaces/%s/clusters/%s/status" % (meta["namespace"], meta["name"]),
                      status, cluster))
    return found


def provision_claims(api):
    """A PersistentVolume for every pending claim without one; the number made."""
    made = 0
    for claim in items(api, "/api/v1/persistentvolumeclaims"):
        meta, spec = claim["metadata"], claim.get("spec") or {}
        if (claim.get("status") or {}).get("phase") != "Pending" or spec.get("volumeName"):
            continue
        name = "stand-in-" + meta["uid"]
        volume = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "operator-stand-ins"}},
            "spec": {
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "storageClassName": spec.get("storageClassName") or "",
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
                # Nothing mounts it: kwok runs the pods.
                "hostPath": {"path": "/var/empty/" + name},
            },
        }
        try:
            api.request("POST", "/api/v1/persistentvolumes", volume)
            made += 1
        except testcluster.ApiError as error:
            if error.status != 409:  # made on an earlier pass, not bound yet
                raise
    return made


def admitted_namespaces(cluster_store):
    """The namespaces a ClusterSecretStore serves: those its conditions list, or None for every one."""
    conditions = (cluster_store.get("spec") or {}).get("conditions") or []
    if not conditions:
        return None
    return set(ns for condition in conditions for ns in condition.get("namespaces") or [])


def serves(ref, namespace, store_keys, admitted):
    """Whether the store ``ref`` names exists and serves an ExternalSecret of ``namespace``."""
    if ref.get("kind", "SecretStore") == "SecretStore":
        return (namespace, ref.get("name")) in store_keys
    if ref.get("kind") == "ClusterSecretStore" and ref.get("name") in admitted:
        namespaces = admitted[ref["name"]]
        return namespaces is None or namespace in namespaces
    return False


def items(api, path):
    try:
        return api.request("GET", path)["items"]
    except testcluster.ApiError as error:
        if error.status == 404:  # the API is not served yet: its chart comes in a later wave
            return []
        raise


def reconcile(api):
    """Write every status that differs; the number written."""
    written = 0
    for path, status, obj in wanted_statuses(api):
        current = obj.get("status") or {}
        if all(current.get(key) == value for key, value in status.items()):
            continue
        try:
            api.request("PATCH", path, {"status": status}, content_type="application/merge-patch+json")
            written += 1
        except testcluster.ApiError as error:
            if error.status != 404:  # deleted meanwhile
                raise
    return written


def run(cluster_dir):
    api = testcluster.TestCluster(cluster_dir).api
    while True:
        try:
            written = reconcile(api) + provision_claims(api)
            if written:
                print("wrote %d object%s" % (written, "" if written == 1 else "s"), flush=True)
        except Exception as error:  # keep going: the API server may be restarting
            print("error: %s" % error, flush=True)
        time.sleep(INTERVAL)


def up(directory, cluster_dir):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, STATE_FILE)
    if os.path.exists(path):
        with open(path) as handle:
            state = json.load(handle)
        if processes.is_ours(state["process"]):
            return state
    command = launch.module_command("testbed.operator_stand_ins", "run", "--cluster", cluster_dir)
    state = {"process": processes.start_process("operator-stand-ins", command, directory)}
    with open(path, "w") as handle:
        json.dump(state, handle)
    return state


def down(directory):
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return
    with open(path) as handle:
        state = json.load(handle)
    processes.stop_processes([state["process"]])
    if processes.is_ours(state["process"]):
        sys.exit("operator stand-ins still running (pid %d)" % state["process"]["pid"])
    os.remove(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "run"))
    parser.add_argument("--dir", help="state and log folder (up, down)")
    parser.add_argument("--cluster", help="the test cluster's folder (up, run)")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.cluster)
    elif args.command == "up":
        print(up(args.dir, args.cluster)["process"]["pid"])
    else:
        down(args.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

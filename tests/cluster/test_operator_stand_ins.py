"""The operator stand-ins against a real control plane: a claim of a StorageClass nobody
provisions gets a PersistentVolume, and kube-controller-manager's binder binds the two."""

import time
import uuid

from testbed import operator_stand_ins


def _claim(namespace, name, storage_class):
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                     "resources": {"requests": {"storage": "5Gi"}}}}


def _phase(api, namespace, name):
    return api.request("GET", "/api/v1/namespaces/%s/persistentvolumeclaims/%s" % (namespace, name))["status"].get(
        "phase")


def test_a_pending_claim_is_provisioned_once_and_bound(cluster):
    api = cluster.api
    namespace = "stand-ins-" + uuid.uuid4().hex[:6]
    api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": namespace}})
    api.request("POST", "/api/v1/namespaces/%s/persistentvolumeclaims" % namespace,
                _claim(namespace, "snapshots", "rook-ceph-block"))
    deadline = time.monotonic() + 30
    while _phase(api, namespace, "snapshots") != "Pending" and time.monotonic() < deadline:
        time.sleep(0.5)

    assert operator_stand_ins.provision_claims(api) == 1
    while _phase(api, namespace, "snapshots") != "Bound" and time.monotonic() < deadline + 60:
        time.sleep(0.5)
    claim = api.request("GET", "/api/v1/namespaces/%s/persistentvolumeclaims/snapshots" % namespace)
    assert claim["status"]["phase"] == "Bound"
    volume = api.request("GET", "/api/v1/persistentvolumes/" + claim["spec"]["volumeName"])
    assert volume["spec"]["storageClassName"] == "rook-ceph-block"
    assert volume["spec"]["capacity"]["storage"] == "5Gi"
    # Bound claims are left alone: a second pass makes nothing.
    assert operator_stand_ins.provision_claims(api) == 0


def test_an_external_secret_is_served_only_by_a_store_open_to_its_namespace():
    stores = {("payments", "vault")}
    admitted = {"aws-payments": {"payments"}, "everyone": None}
    assert operator_stand_ins.serves({"kind": "SecretStore", "name": "vault"}, "payments", stores, admitted)
    assert not operator_stand_ins.serves({"kind": "SecretStore", "name": "vault"}, "store", stores, admitted)
    assert operator_stand_ins.serves({"kind": "ClusterSecretStore", "name": "aws-payments"}, "payments", stores,
                                     admitted)
    assert not operator_stand_ins.serves({"kind": "ClusterSecretStore", "name": "aws-payments"}, "store", stores,
                                         admitted)
    assert operator_stand_ins.serves({"kind": "ClusterSecretStore", "name": "everyone"}, "store", stores, admitted)
    assert not operator_stand_ins.serves({"kind": "ClusterSecretStore", "name": "missing"}, "store", stores, admitted)
    assert operator_stand_ins.admitted_namespaces({"spec": {"conditions": [{"namespaces": ["a"]}]}}) == {"a"}
    assert operator_stand_ins.admitted_namespaces({"spec": {}}) is None

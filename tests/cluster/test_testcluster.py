"""The test control plane itself: a working, RBAC-guarded API that stops without a trace."""

import os
import socket
import subprocess
import time

import pytest

from airgap import launch, processes
from testbed import pki, testcluster



def status_of(call):
    try:
        call()
    except testcluster.ApiError as error:
        return error.status
    return 200


def test_api_is_ready_at_the_requested_version(cluster):
    assert cluster.api.request("GET", "/readyz") == "ok"
    assert cluster.api.request("GET", "/version")["gitVersion"] == "v" + cluster.version
    assert cluster.state()["ready_seconds"] < 60


def test_api_listens_on_loopback_only(cluster):
    assert cluster.server.startswith("https://127.0.0.1:")


def test_unauthenticated_request_is_refused(cluster):
    anonymous = cluster.client()
    assert status_of(lambda: anonymous.request("GET", "/api/v1/nodes")) == 403


def test_unprivileged_user_is_refused_until_rbac_grants_it(cluster):
    pki.write_client_cert(cluster.pki, "jane", "jane")
    jane = cluster.client("jane")
    assert status_of(lambda: jane.request("GET", "/api/v1/nodes")) == 403
    cluster.api.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
        "metadata": {"name": "test-node-reader"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]})
    cluster.api.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "metadata": {"name": "test-node-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "test-node-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}]})
    deadline = time.monotonic() + 10
    while status_of(lambda: jane.request("GET", "/api/v1/nodes")) != 200:
        assert time.monotonic() < deadline, "the binding never took effect"
        time.sleep(0.2)
    assert status_of(lambda: jane.request("DELETE", "/api/v1/nodes/anything")) == 403


def test_controller_manager_finishes_namespace_deletion(cluster):
    cluster.api.request("POST", "/api/v1/namespaces", {"metadata": {"name": "doomed"}})
    cluster.api.request("POST", "/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "c"}})
    cluster.api.request("DELETE", "/api/v1/namespaces/doomed")
    deadline = time.monotonic() + 60
    while status_of(lambda: cluster.api.request("GET", "/api/v1/namespaces/doomed")) != 404:
        assert time.monotonic() < deadline, "namespace deletion never finished"
        time.sleep(0.5)


def test_node_taints_are_an_atomic_list_and_labels_a_granular_map(cluster):
    schemas = cluster.api.request("GET", "/openapi/v3/api/v1")["components"]["schemas"]
    taints = schemas["io.k8s.api.core.v1.NodeSpec"]["properties"]["taints"]
    labels = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"]
    assert taints["x-kubernetes-list-type"] == "atomic"
    assert "x-kubernetes-map-type" not in labels  # granular is the default


def test_nodes_are_registered_as_kubelet_and_kubeadm_do(cluster):
    cluster.register_nodes([{"name": "reg-cp-1", "control_plane": True},
                            {"name": "reg-w-1", "labels": {"node.role": "worker"}}])
    cp = cluster.api.node("reg-cp-1")
    worker = cluster.api.node("reg-w-1")
    assert cp["metadata"]["labels"]["kubernetes.io/hostname"] == "reg-cp-1"
    assert cp["metadata"]["labels"][testcluster.CONTROL_PLANE_LABEL] == ""
    assert {"key": testcluster.CONTROL_PLANE_LABEL, "effect": "NoSchedule"} in cp["spec"]["taints"]
    managers = dict((e["manager"], e) for e in cp["metadata"]["managedFields"])
    assert "f:" + testcluster.CONTROL_PLANE_LABEL in managers["kubeadm"]["fieldsV1"]["f:metadata"]["f:labels"]
    assert "f:taints" in managers["kubeadm"]["fieldsV1"]["f:spec"]
    assert "f:kubernetes.io/os" in managers["kubelet"]["fieldsV1"]["f:metadata"]["f:labels"]
    assert worker["metadata"]["labels"]["node.role"] == "worker"
    assert testcluster.CONTROL_PLANE_LABEL not in worker["metadata"]["labels"]


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_cli_up_status_down_leaves_nothing_running(cluster, tmp_path):
    """A second cluster beside the session's one, driven through the command line."""
    directory = str(tmp_path / "second")
    run = lambda *args: subprocess.run(launch.module_command("testbed.testcluster", *args, "--dir", directory),
                                       capture_output=True, text=True)
    up = run("up")
    assert up.returncode == 0, up.stderr
    second = testcluster.TestCluster(directory)
    state = second.state()
    assert state["server"] != cluster.server
    assert run("status").returncode == 0
    pids = [entry["pid"] for entry in state["processes"]]
    assert len(pids) == 3 and all(processes.is_ours(e) for e in state["processes"])

    down = run("down")
    assert down.returncode == 0, down.stderr
    assert not any(os.path.exists("/proc/%d" % pid) and processes.is_ours(e)
                   for pid, e in zip(pids, state["processes"]))
    assert not any(port_open(p) for p in state["ports"].values())
    assert run("status").returncode == 1
    assert cluster.api.request("GET", "/readyz") == "ok"  # the other cluster is untouched

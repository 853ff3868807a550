"""The test cluster with pods on: the real scheduler places them by the node pools' labels and
taints, kwok runs them, so Deployments and PodDisruptionBudgets report health as in a cluster."""

import json
import os
import socket
import subprocess
import time

import pytest

from airgap import build_kubernetes, gomodules, launch, processes
from testbed import testcluster

NAMESPACE = "pods-test"
CONTROL_PLANE = "pods-cp-1"
GATEWAY = "pods-gw-1"
WORKER = "pods-w-1"
GATEWAY_LABEL = "node.kong.gateway"
GATEWAY_TOLERATION = {"key": GATEWAY_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
WAIT_SECONDS = 90


def wait_for(what, observe, reached, timeout=WAIT_SECONDS):
    """Observe the real state until ``reached(state)``; fail with the last observation."""
    deadline = time.monotonic() + timeout
    while True:
        state = observe()
        if reached(state):
            return state
        if time.monotonic() > deadline:
            pytest.fail("%s not reached within %ds; last observed:\n%s"
                        % (what, timeout, json.dumps(state, indent=2, sort_keys=True)))
        time.sleep(0.5)


def test_kwok_target_builds_the_pinned_release_once_with_its_stages(tmp_path, monkeypatch):
    """No Go, no network: the module archive and go build are stand-ins."""
    archive = tmp_path / "module"
    for relative in build_kubernetes.KWOK_STAGES:
        (archive / relative).parent.mkdir(parents=True, exist_ok=True)
        (archive / relative).write_text("kind: Stage  # %s\n" % relative)
    built = []

    def go_build(work_dir, package, target, ldflags, tags, arch, extra=()):
        with open(target, "w") as handle:
            handle.write(package)
        built.append((package, ldflags))
        return 0.5

    monkeypatch.setattr(gomodules, "module_info", lambda module, version: {
        "Path": module, "Version": version, "Dir": str(archive)} if module == build_kubernetes.KWOK_MODULE else None)
    monkeypatch.setattr(gomodules, "prepare_work_module",
                        lambda work_dir, info, packages, replaces_for: built.append(("prepare", packages)))
    monkeypatch.setattr(gomodules, "go_build", go_build)
    monkeypatch.setattr(gomodules, "go_version", lambda: "go1.26.8")
    args = build_kubernetes.parse_args(["--version", "1.36.3", "--binaries", "kwok", "--cache", str(tmp_path)])

    bin_dir, timings = build_kubernetes.build_kwok_release(args)
    assert bin_dir == str(tmp_path / "kwok" / build_kubernetes.KWOK_VERSION / "bin")
    stamp = "-s -w -X 'sigs.k8s.io/kwok/pkg/consts.Version=%s'" % build_kubernetes.KWOK_VERSION
    assert built == [("prepare", ["sigs.k8s.io/kwok/cmd/kwok"]), ("sigs.k8s.io/kwok/cmd/kwok", stamp)]
    assert [name for name, _ in timings] == ["kwok"]
    assert testcluster.find_binaries("1.36.3", str(tmp_path), pods=True) is None  # no control plane here
    stages = testcluster.kwok_stages(str(tmp_path))
    assert [os.path.basename(path) for path in stages] == [
        "node-initialize.yaml", "node-heartbeat-with-lease.yaml", "pod-ready.yaml", "pod-complete.yaml",
        "pod-delete.yaml"]
    assert all(open(path).read().startswith("kind: Stage") for path in stages)

    del built[:]
    assert build_kubernetes.build_kwok_release(args) == (bin_dir, [])
    assert built == []
    with pytest.raises(gomodules.BuildError, match="--kwok-version 'latest'"):
        build_kubernetes.build_kwok_release(build_kubernetes.parse_args(
            ["--version", "1.36.3", "--kwok-version", "latest", "--cache", str(tmp_path)]))


@pytest.fixture(scope="module")
def pools(pods_cluster):
    """The node pools of the platform's inventories: control plane, Kong gateway, workers."""
    pods_cluster.register_nodes([
        {"name": CONTROL_PLANE, "control_plane": True},
        {"name": GATEWAY, "labels": {GATEWAY_LABEL: "true"},
         "taints": [{"key": GATEWAY_LABEL, "value": "true", "effect": "NoSchedule"}]},
        {"name": WORKER, "labels": {"node.role": "worker"}},
    ])
    pods_cluster.api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
    return pods_cluster


def deployment(name, replicas, node_selector, tolerations=()):
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "nodeSelector": node_selector,
                "tolerations": list(tolerations),
                # Never pulled: kwok reports the container running without one.
                "containers": [{"name": "app", "image": "registry.invalid/app:1"}],
            }},
        },
    }


def create_deployment(cluster, *args, **kwargs):
    return cluster.api.request("POST", "/apis/apps/v1/namespaces/%s/deployments" % NAMESPACE,
                               deployment(*args, **kwargs))


def observe_deployment(cluster, name):
    """The Deployment's status and its pods, as the API reports them now."""
    found = cluster.api.request("GET", "/apis/apps/v1/namespaces/%s/deployments/%s" % (NAMESPACE, name))
    return {"generation": found["metadata"]["generation"], "status": found.get("status", {}),
            "pods": observe_pods(cluster, name)}


def observe_pods(cluster, app):
    pods = cluster.api.request("GET", "/api/v1/namespaces/%s/pods" % NAMESPACE,
                               query={"labelSelector": "app=" + app})["items"]
    return [{"name": pod["metadata"]["name"], "node": pod["spec"].get("nodeName"),
             "phase": pod["status"].get("phase"), "podIP": pod["status"].get("podIP"),
             "template": pod["metadata"]["labels"].get("pod-template-hash"),
             "deleting": "deletionTimestamp" in pod["metadata"],
             "conditions": dict((c["type"], [c["status"], c.get("reason")])
                                for c in pod["status"].get("conditions", []))}
            for pod in pods]


def available(replicas):
    def reached(state):
        status = state["status"]
        return (status.get("observedGeneration") == state["generation"]
                and status.get("availableReplicas") == replicas
                and status.get("updatedReplicas") == replicas
                and status.get("replicas") == replicas
                and len(state["pods"]) == replicas)
    return reached


def assert_running_on(state, node):
    for pod in state["pods"]:
        assert pod["node"] == node, state
        assert pod["phase"] == "Running" and pod["conditions"]["Ready"][0] == "True", state
        assert pod["podIP"], state


def observe_nodes(cluster):
    """Each pool node's Ready status, taints and Lease renewal time."""
    leases = cluster.api.request("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases")
    renewed = dict((lease["metadata"]["name"], lease["spec"].get("renewTime")) for lease in leases["items"])
    observed = {}
    for name in (CONTROL_PLANE, GATEWAY, WORKER):
        node = cluster.api.node(name)
        observed[name] = {
            "ready": [c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"],
            "taints": node["spec"].get("taints", []),
            "lease_renewed": renewed.get(name)}
    return observed


def test_nodes_are_kept_ready_by_lease_heartbeats(pools):
    def ready(state):
        return all(node["ready"] == ["True"] and node["lease_renewed"]
                   and not any(t["key"] == "node.kubernetes.io/not-ready" for t in node["taints"])
                   for node in state.values())

    first = wait_for("every node Ready, its lease held and the not-ready taint lifted",
                     lambda: observe_nodes(pools), ready)
    wait_for("every node's lease renewed", lambda: observe_nodes(pools), lambda state: ready(state) and all(
        node["lease_renewed"] != first[name]["lease_renewed"] for name, node in state.items()))
    # The pools' own marks stay as kubelet and kubeadm put them.
    assert first[GATEWAY]["taints"] == [{"key": GATEWAY_LABEL, "value": "true", "effect": "NoSchedule"}]
    assert first[CONTROL_PLANE]["taints"] == [testcluster.CONTROL_PLANE_TAINT]
    assert first[WORKER]["taints"] == []


@pytest.fixture(scope="module")
def web(pools):
    """Two replicas for the worker pool; the fixture's value is the Deployment's name."""
    create_deployment(pools, "web", 2, {"node.role": "worker"})
    return "web"


def test_worker_deployment_becomes_available_on_the_worker_only(pools, web):
    state = wait_for("deployment web available", lambda: observe_deployment(pools, web), available(2))
    assert_running_on(state, WORKER)
    assert len(set(pod["podIP"] for pod in state["pods"])) == 2


def test_gateway_deployment_lands_on_the_tainted_gateway_node(pools):
    create_deployment(pools, "gateway", 1, {GATEWAY_LABEL: "true"}, [GATEWAY_TOLERATION])
    state = wait_for("deployment gateway available", lambda: observe_deployment(pools, "gateway"),
                     available(1))
    assert_running_on(state, GATEWAY)


@pytest.mark.parametrize("name, node_selector", [
    ("nowhere", {"node.role": "nowhere"}),  # a label no node has
    ("untolerated", {GATEWAY_LABEL: "true"}),  # the gateway's label without its toleration
])
def test_unplaceable_deployment_stays_unavailable(pools, name, node_selector):
    create_deployment(pools, name, 1, node_selector)

    def unschedulable(state):
        return (len(state["pods"]) == 1
                and state["pods"][0]["conditions"].get("PodScheduled") == ["False", "Unschedulable"]
                and state["status"].get("observedGeneration") == state["generation"]
                and state["status"].get("unavailableReplicas") == 1)

    state = wait_for("pod of %s reported unschedulable" % name, lambda: observe_deployment(pools, name),
                     unschedulable)
    pod = state["pods"][0]
    assert pod["node"] is None and pod["phase"] == "Pending", state
    assert not state["status"].get("availableReplicas"), state


def test_pod_disruption_budget_counts_the_healthy_worker_pods(pools, web):
    wait_for("deployment web available", lambda: observe_deployment(pools, web), available(2))
    pools.api.request("POST", "/apis/policy/v1/namespaces/%s/poddisruptionbudgets" % NAMESPACE, {
        "metadata": {"name": web},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": web}}}})

    def observe():
        pdb = pools.api.request("GET", "/apis/policy/v1/namespaces/%s/poddisruptionbudgets/%s" % (NAMESPACE, web))
        return {"generation": pdb["metadata"]["generation"], "status": pdb.get("status", {})}

    state = wait_for("PodDisruptionBudget web observed", observe, lambda s: (
        s["status"].get("observedGeneration") == s["generation"] and s["status"].get("currentHealthy") == 2))
    assert state["status"]["expectedPods"] == 2
    assert state["status"]["desiredHealthy"] == 1
    assert state["status"]["disruptionsAllowed"] == 1


def test_rolling_update_replaces_every_pod(pools):
    """Old pods must really go: without a kubelet a deleted pod would stay Terminating for ever."""
    create_deployment(pools, "rollout", 2, {"node.role": "worker"})
    before = wait_for("deployment rollout available", lambda: observe_deployment(pools, "rollout"),
                      available(2))
    pools.api.request("PATCH", "/apis/apps/v1/namespaces/%s/deployments/rollout" % NAMESPACE,
                      {"spec": {"template": {"metadata": {"annotations": {"plinth.test/revision": "2"}}}}},
                      content_type="application/strategic-merge-patch+json")
    old = before["pods"][0]["template"]
    after = wait_for("deployment rollout updated, old pods gone",
                     lambda: observe_deployment(pools, "rollout"),
                     lambda s: available(2)(s) and all(p["template"] != old for p in s["pods"]))
    assert_running_on(after, WORKER)


def port_open(port):
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_cli_up_with_pods_then_down_leaves_nothing_running(tmp_path):
    directory = str(tmp_path / "cli-pods")

    def run(*args):
        return subprocess.run(launch.module_command("testbed.testcluster", *args, "--dir", directory),
                              capture_output=True, text=True)

    up = run("up", "--pods")
    assert up.returncode == 0, up.stderr
    state = testcluster.TestCluster(directory).state()
    names = [entry["name"] for entry in state["processes"]]
    assert names == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]
    status = run("status")
    assert status.returncode == 0 and json.loads(status.stdout)["pods"] is True, status.stdout
    assert port_open(state["ports"]["scheduler"]) and port_open(state["ports"]["kwok"])

    down = run("down")
    assert down.returncode == 0, down.stderr
    assert not any(processes.is_ours(entry) for entry in state["processes"])
    assert not any(port_open(port) for port in state["ports"].values())

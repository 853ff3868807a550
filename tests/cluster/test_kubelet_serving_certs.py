"""kubelet_serving_certs against a real API server: requests made with each node's own
credentials (as its kubelet does), approved only when they match the inventory, and signed
by the cluster CA through kube-controller-manager."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from testbed import register_nodes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CSR_PATH = register_nodes.CSR_PATH


def run_module(tmp_path, cluster, hosts, check=False):
    playbook = tmp_path / "approve.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "Approve", "register": "result",
                   "plinth.platform.kubelet_serving_certs": {"hosts": hosts, "kubeconfig": cluster.admin_conf}},
                  {"ansible.builtin.copy": {"content": "{{ result | to_json }}", "dest": str(tmp_path / "result.json"),
                                            "mode": "0600"}, "check_mode": False}],
    }]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook)]
    subprocess.run(command + (["--check"] if check else []), check=True, env=env, cwd=ROOT,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return json.loads((tmp_path / "result.json").read_text())


def by_node(cluster, node):
    return [c for c in cluster.api.request("GET", CSR_PATH)["items"]
            if c["spec"]["username"] == "system:node:" + node and c["spec"]["signerName"] == register_nodes.SIGNER]


def approved(csr):
    return any(c["type"] == "Approved" for c in (csr.get("status") or {}).get("conditions") or [])


def signed(cluster, node, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        [csr] = by_node(cluster, node)
        if csr.get("status", {}).get("certificate") or time.monotonic() > deadline:
            return csr
        time.sleep(0.5)


@pytest.fixture
def nodes(cluster):
    names = ["csr-good", "csr-wrong-ip", "csr-intruder"]
    cluster.register_nodes([{"name": n} for n in names])
    yield names
    cluster.delete_nodes(names)
    for csr in cluster.api.request("GET", CSR_PATH)["items"]:
        if csr["spec"]["username"].startswith("system:node:csr-"):
            cluster.api.request("DELETE", CSR_PATH + "/" + csr["metadata"]["name"])


def test_only_requests_matching_the_inventory_are_approved_and_then_signed(cluster, nodes, tmp_path):
    register_nodes.request_serving_cert(cluster, "csr-good", "192.0.2.41")
    register_nodes.request_serving_cert(cluster, "csr-wrong-ip", "192.0.2.99")
    register_nodes.request_serving_cert(cluster, "csr-intruder", "192.0.2.77")
    hosts = {"csr-good": {"address": "192.0.2.41"}, "csr-wrong-ip": {"address": "192.0.2.42"}}

    planned = run_module(tmp_path, cluster, hosts, check=True)
    assert planned["changed"] and sorted(planned["approved"].values()) == ["csr-good"]
    assert not any(approved(c) for n in nodes for c in by_node(cluster, n)), "check mode approved something"

    result = run_module(tmp_path, cluster, hosts)
    assert result["changed"] and sorted(result["approved"].values()) == ["csr-good"]
    reasons = sorted(result["refused"].values())
    assert reasons == ["addresses ['192.0.2.99'] are not host csr-wrong-ip's inventory address 192.0.2.42",
                       "node 'csr-intruder' is not a host of the inventory"]
    good = signed(cluster, "csr-good")
    assert approved(good) and good["status"].get("certificate"), good.get("status")
    for name in ("csr-wrong-ip", "csr-intruder"):
        [csr] = by_node(cluster, name)
        assert not (csr.get("status") or {}).get("conditions"), "left pending, never denied"

    again = run_module(tmp_path, cluster, hosts)
    assert not again["changed"] and again["approved"] == {}

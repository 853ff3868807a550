"""Role cni_bridge: its variables as Ansible resolves them, and the files it writes, for a 3-node cluster.

Expressions are resolved by Ansible's own templating in a separate interpreter (a worker this file starts),
set up the way ansible-playbook sets itself up: Ansible's collection loader must own `ansible_collections`,
which the collection's unit tests import as a plain package in the pytest process.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE = os.path.join(ROOT, "roles", "cni_bridge")
HOSTS = ["cp-1", "worker-1", "worker-2"]


def node(name, pod_cidr, addresses):
    """A Node as `kubectl get nodes -o json` lists it (the fields the role reads, and some it must skip)."""
    spec = {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]} if pod_cidr else {}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": spec, "status": {"addresses": addresses + [{"type": "Hostname", "address": name}]}}


def internal(*addresses):
    return [{"type": "InternalIP", "address": address} for address in addresses]


THREE_NODES = [
    node("cp-1", "10.244.0.0/24", internal("10.0.0.11")),
    # An IPv6 address listed first, and an ExternalIP: the IPv4 InternalIP is the next hop.
    node("worker-1", "10.244.1.0/24", internal("fd00::21", "10.0.0.21") + [{"type": "ExternalIP", "address": "192.0.2.21"}]),
    node("worker-2", "10.244.2.0/24", internal("10.0.0.22")),
]


def node_list(nodes):
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})


def serve():
    """The worker: one JSON request a line on stdin, one JSON answer a line on stdout."""
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.template import Templar, trust_as_template

    def trusted(value):
        # Task arguments and role variables are templates only when they come from trusted files.
        if isinstance(value, list):
            return [trusted(item) for item in value]
        return trust_as_template(value)

    init_plugin_loader()
    loader = DataLoader()
    role_vars = {}
    for part in ("defaults", "vars"):
        role_vars.update(loader.load_from_file(os.path.join(ROLE, part, "main.yml"), trusted_as_template=True))
    for line in sys.stdin:
        request = json.loads(line)
        variables = dict(role_vars, **request["data"])
        variables.update((name, trusted(value)) for name, value in request["templates"].items())
        try:
            answer = {"value": Templar(loader=loader, variables=variables).template(trusted(request["expression"]))}
        except Exception as error:  # noqa: BLE001 - reported to the test, which fails with it
            answer = {"error": "%s: %s" % (type(error).__name__, error)}
        print(json.dumps(answer), flush=True)


@pytest.fixture(scope="module")
def worker():
    process = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    yield process
    process.stdin.close()
    process.wait(timeout=30)


@pytest.fixture
def resolve(worker):
    """resolve(expression, host=..., **inputs): the value Ansible gives a template over the role's variables.

    Inputs are data (registered results, facts); those passed as templates=... are task variables,
    templates themselves.
    """
    def resolve(expression, host="worker-1", nodes=THREE_NODES, pod_cidr="10.244.0.0/16", templates=None, **inputs):
        data = dict(cni_bridge_spec={"pod_cidr": pod_cidr, "components": {"cilium": {"enabled": False}}},
                    inventory_hostname=host, ansible_play_hosts=HOSTS,
                    ansible_facts={"architecture": "x86_64"},
                    __cni_bridge_node_list={"rc": 0, "stdout": node_list(nodes)})
        data.update(inputs)
        worker.stdin.write(json.dumps({"expression": expression, "data": data, "templates": templates or {}}) + "\n")
        worker.stdin.flush()
        line = worker.stdout.readline()
        assert line, "the worker exited (exit %s); its error is above" % worker.poll()
        answer = json.loads(line)
        assert "error" not in answer, answer["error"]
        return answer["value"]
    return resolve


def flatten(tasks):
    for entry in tasks:
        yield entry
        for section in ("block", "rescue", "always"):
            yield from flatten(entry.get(section, []))


def task(file_name, name_start):
    with open(os.path.join(ROLE, "tasks", file_name)) as handle:
        tasks = list(flatten(yaml.safe_load(handle)))
    found = [t for t in tasks if t["name"].split(" | ")[-1].startswith(name_start)]
    assert len(found) == 1, name_start
    return found[0]


def written_files(resolve, host, **inputs):
    """{path: content} of the files the network task writes on host, rendered by the task's own template lookups."""
    write = task("network.yml", "Write the bridge network")["plinth.platform.managed_files"]["files"]
    paths = [resolve(entry["path"], host=host, **inputs) for entry in write]
    contents = [resolve(entry["content"], host=host, ansible_search_path=[ROLE], **inputs) for entry in write]
    return dict(zip(paths, contents))


def conflist(resolve, host, **inputs):
    return written_files(resolve, host, **inputs)["/etc/cni/net.d/10-plinth-bridge.conflist"]


def route_unit(resolve, host, **inputs):
    return written_files(resolve, host, **inputs)["/etc/systemd/system/plinth-pod-routes.service"]


def test_nodes_are_read_as_pod_cidr_and_internal_ip(resolve):
    assert resolve("{{ __cni_bridge_nodes }}") == {
        "cp-1": ["10.244.0.0/24", "10.0.0.11"],
        "worker-1": ["10.244.1.0/24", "10.0.0.21"],
        "worker-2": ["10.244.2.0/24", "10.0.0.22"],
    }
    assert resolve("{{ __cni_bridge_nodes_missing }}") == []


@pytest.mark.parametrize("host,pod_cidr", [("cp-1", "10.244.0.0/24"), ("worker-1", "10.244.1.0/24"),
                                           ("worker-2", "10.244.2.0/24")])
def test_conflist_is_a_bridge_network_over_the_nodes_pod_cidr(resolve, host, pod_cidr):
    network = json.loads(conflist(resolve, host))
    assert network["cniVersion"] == "1.0.0"
    assert network["name"] == "plinth-bridge"
    bridge, portmap = network["plugins"]
    assert bridge == {
        "type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]], "routes": [{"dst": "0.0.0.0/0"}]},
    }
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}
    assert resolve("{{ __cni_bridge_node_ready }}", host=host) is True


def unit_lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("host,routes", [
    ("cp-1", ["10.244.1.0/24 via 10.0.0.21", "10.244.2.0/24 via 10.0.0.22"]),
    ("worker-1", ["10.244.0.0/24 via 10.0.0.11", "10.244.2.0/24 via 10.0.0.22"]),
    ("worker-2", ["10.244.0.0/24 via 10.0.0.11", "10.244.1.0/24 via 10.0.0.21"]),
])
def test_route_unit_replaces_a_route_to_every_other_node(resolve, host, routes):
    text = route_unit(resolve, host)
    assert text.startswith("# Managed by Plinth (role cni_bridge)")
    assert unit_lines(text) == [
        "[Unit]",
        "Description=Routes to the pod networks of the other Kubernetes nodes",
        "Wants=network-online.target",
        "After=network-online.target",
        "Before=kubelet.service",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
    ] + ["ExecStart=/usr/sbin/ip route replace " + route for route in routes] + [
        "[Install]",
        "WantedBy=multi-user.target",
    ]


def test_route_unit_of_a_single_node_still_starts(resolve):
    text = route_unit(resolve, "cp-1", nodes=THREE_NODES[:1])
    assert [line for line in unit_lines(text) if line.startswith("ExecStart=")] == ["ExecStart=/usr/bin/true"]


def test_nodes_the_network_cannot_cover_are_named_by_reason(resolve):
    nodes = [THREE_NODES[0], node("worker-1", "", internal("10.0.0.21")), node("worker-3", "10.244.3.0/24", [])]
    missing = {name: resolve("{{ %s }}" % name, nodes=nodes) for name in
               ("__cni_bridge_unregistered", "__cni_bridge_without_pod_cidr", "__cni_bridge_without_address")}
    assert missing == {"__cni_bridge_unregistered": ["worker-2"],
                       "__cni_bridge_without_pod_cidr": ["worker-1"],
                       "__cni_bridge_without_address": []}
    # worker-3 (not in the play) has no address: no route to it, and none to worker-1 without a pod CIDR.
    assert resolve("{{ __cni_bridge_routes }}", host="cp-1", nodes=nodes) == []
    only_ipv6 = THREE_NODES[:2] + [node("worker-2", "10.244.2.0/24", internal("fd00::22"))]
    assert resolve("{{ __cni_bridge_without_address }}", nodes=only_ipv6) == ["worker-2"]
    assert resolve("{{ __cni_bridge_nodes_missing }}", nodes=only_ipv6) == ["worker-2"]
    assert resolve("{{ __cni_bridge_node_ready }}", host="worker-1", nodes=nodes) is False
    assert resolve("{{ __cni_bridge_node_ready }}", host="worker-2", nodes=nodes) is False
    # The read is repeated while a node of the play is missing or kubectl fails; check mode takes what there is.
    until = "{{ %s }}" % task("nodes.yml", "Read every node's pod CIDR")["until"]
    assert resolve(until, nodes=nodes, ansible_check_mode=False) is False
    assert resolve(until, nodes=nodes, ansible_check_mode=True) is True
    assert resolve(until, ansible_check_mode=False) is True
    assert resolve(until, ansible_check_mode=False, __cni_bridge_node_list={"rc": 1, "stdout": ""}) is False


def test_only_missing_or_wrong_routes_are_replaced(resolve):
    table = [
        {"dst": "default", "gateway": "10.0.0.1", "dev": "eth0", "flags": []},
        {"dst": "10.0.0.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link", "prefsrc": "10.0.0.21", "flags": []},
        {"dst": "10.244.0.0/24", "gateway": "10.0.0.11", "dev": "eth0", "flags": []},
        {"dst": "10.244.1.0/24", "dev": "cni0", "protocol": "kernel", "scope": "link", "flags": []},
        # A stale next hop for worker-2's pods.
        {"dst": "10.244.2.0/24", "gateway": "10.0.0.99", "dev": "eth0", "flags": []},
    ]
    replace = task("network.yml", "Add the routes")
    loop = resolve(replace["loop"], __cni_bridge_route_table={"stdout": json.dumps(table)})
    assert loop == ["10.244.2.0/24 via 10.0.0.22"]
    assert resolve(replace["ansible.builtin.command"]["argv"], item=loop[0]) == [
        "ip", "route", "replace", "10.244.2.0/24", "via", "10.0.0.22"]
    table[-1]["gateway"] = "10.0.0.22"
    assert resolve(replace["loop"], __cni_bridge_route_table={"stdout": json.dumps(table)}) == []


def test_only_plugins_that_differ_are_downloaded(resolve):
    sums = "".join("%s  bin/linux/amd64/%s\n" % (digit * 64, name)
                   for digit, name in zip("1234", ["bridge", "host-local", "loopback", "portmap"]))
    installed = "\n".join(["1" * 64 + "  /opt/cni/bin/bridge", "9" * 64 + "  /opt/cni/bin/host-local",
                           "3" * 64 + "  /opt/cni/bin/loopback"])
    install = task("plugins.yml", "Install the plugins")
    inputs = dict(__cni_bridge_sums={"content": sums}, __cni_bridge_installed_sums={"stdout": installed},
                  templates={"__path": install["vars"]["__path"]})
    assert resolve(install["loop"], **inputs) == ["host-local", "portmap"]
    assert resolve(install["ansible.builtin.get_url"]["url"], item="portmap",
                   cni_bridge_mirror_url="http://mirror.example.internal:8088/", **inputs) \
        == "http://mirror.example.internal:8088/cni-plugins/v1.9.1/bin/linux/amd64/portmap"
    assert resolve(install["ansible.builtin.get_url"]["checksum"], item="portmap", **inputs) == "sha256:" + "4" * 64


def test_an_ipv6_pod_network_uses_ipv6_next_hops_and_default_route(resolve):
    nodes = [node("cp-1", "fd10:244::/64", internal("10.0.0.11", "fd00::11")),
             node("worker-1", "fd10:244:0:1::/64", internal("10.0.0.21", "fd00::21"))]
    assert resolve("{{ __cni_bridge_routes }}", host="cp-1", nodes=nodes, pod_cidr="fd10:244::/56") \
        == ["fd10:244:0:1::/64 via fd00::21"]
    network = json.loads(conflist(resolve, "cp-1", nodes=nodes, pod_cidr="fd10:244::/56"))
    assert network["plugins"][0]["ipam"] == {
        "type": "host-local", "ranges": [[{"subnet": "fd10:244::/64"}]], "routes": [{"dst": "::/0"}]}
    read = task("network.yml", "Read the routing table")
    assert resolve(read["ansible.builtin.command"]["argv"], pod_cidr="fd10:244::/56")[:3] == ["ip", "-6", "-json"]


def test_the_role_refuses_to_run_beside_cilium(resolve):
    refuse = task("main.yml", "Refuse to run beside Cilium")
    that = "{{ %s }}" % refuse["ansible.builtin.assert"]["that"]
    assert resolve(that) is True
    assert resolve(that, cni_bridge_spec={"pod_cidr": "10.244.0.0/16", "components": {"cilium": {"enabled": True}}}) is False


def test_the_role_is_off_by_default():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        assert yaml.safe_load(handle)["cni_bridge_enabled"] is False
    first = task("main.yml", "Leave the pod network")
    assert first["ansible.builtin.meta"] == "end_role"
    assert first["when"] == "not cni_bridge_enabled | bool"


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()

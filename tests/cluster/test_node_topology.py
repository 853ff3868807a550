"""node_topology against a real API server, driven through ansible-playbook playbooks/topology.yml.

Each test has nodes of its own (a name prefix), registered as their kubelets (and kubeadm,
for the control plane) would, and an inventory whose node pools cover them.
"""

import copy
import json

import pytest

from testbed import testcluster, topology

OPERATOR_LABEL = "operator.example.com/managed"
OPERATOR_TAINT = {"key": "operator.example.com/maintenance", "value": "yes", "effect": "NoExecute"}


class Env:
    """One test's nodes and inventory."""

    def __init__(self, cluster, directory, prefix, size=5):
        self.cluster = cluster
        self.groups = topology.layout(prefix, size)
        self.pools = copy.deepcopy(topology.DEFAULT_POOLS)
        self.inventory = str(directory / "inventory")
        self.write()

    def write(self):
        topology.write_inventory(self.inventory, self.groups, self.pools)

    def host(self, group, index=0):
        return self.groups[group][index]

    def register(self, **per_node):
        nodes = [{"name": h, "control_plane": g == "control_plane"}
                 for g, hosts in sorted(self.groups.items()) for h in hosts]
        for node in nodes:
            node.update(per_node.get(node["name"], {}))
        self.cluster.register_nodes(nodes)

    def play(self, *args):
        seconds, output = topology.run_playbook(self.inventory, self.cluster.admin_conf, *args)
        task = [t for t in output["plays"][0]["tasks"] if "apply | Apply labels" in t["task"]["name"]][0]
        return task["hosts"]["localhost"]

    def node(self, name):
        return self.cluster.api.node(name)

    def labels(self, name):
        return self.node(name)["metadata"]["labels"]

    def taints(self, name):
        return self.node(name)["spec"].get("taints", [])


@pytest.fixture
def env(cluster, tmp_path, request):
    prefix = request.node.name.replace("test_", "").replace("_", "-")[:20].strip("-")
    test_env = Env(cluster, tmp_path, prefix)
    yield test_env
    cluster.delete_nodes([h for hosts in test_env.groups.values() for h in hosts])


def operator_marks(api, name):
    """An operator's label (server-side apply) and taint (read-modify-write update)."""
    api.request("PATCH", "/api/v1/nodes/%s" % name,
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {OPERATOR_LABEL: "x"}}},
                content_type="application/apply-patch+yaml", query={"fieldManager": "operator"})
    node = api.node(name)
    node["spec"]["taints"] = node["spec"].get("taints", []) + [OPERATOR_TAINT]
    api.request("PUT", "/api/v1/nodes/%s" % name, node, query={"fieldManager": "operator"})


def test_first_run_applies_every_pool_then_a_rerun_changes_nothing(env):
    env.register()
    gw, ceph, worker, cp = (env.host("kong_nodes"), env.host("ceph_nodes"), env.host("workers"),
                            env.host("control_plane"))
    result = env.play()
    assert result["changed"] is True
    assert sorted(result["nodes"]) == sorted([gw, env.host("kong_nodes", 1), ceph, worker])
    assert env.labels(gw)["node.kong.gateway"] == "true"
    assert {"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"} in env.taints(gw)
    assert env.labels(ceph)["node.ceph.storage"] == "true"
    assert env.labels(worker)["node.role"] == "worker"
    assert not any(t["key"].startswith("node.kong") for t in env.taints(worker))
    # kubeadm's marks on the control plane stay kubeadm's; the kubelet's labels stay the kubelet's.
    assert env.labels(cp)[testcluster.CONTROL_PLANE_LABEL] == ""
    assert testcluster.CONTROL_PLANE_TAINT in env.taints(cp)
    assert env.labels(gw)["kubernetes.io/hostname"] == gw
    # The API server's own not-ready taint (a foreign one) survives Plinth's whole-list apply.
    assert {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"} in env.taints(gw)

    again = env.play()
    assert again["changed"] is False
    assert again["nodes"] == {}
    assert again["unchanged"] == 5


def test_check_mode_reports_the_change_and_changes_nothing(env):
    env.register()
    gw = env.host("kong_nodes")
    result = env.play("--check")
    assert result["changed"] is True
    assert result["nodes"][gw]["labels_added"] == {"node.kong.gateway": "true"}
    assert result["nodes"][gw]["taints_added"] == ["node.kong.gateway=true:NoSchedule"]
    # The controller manager's TTL annotation moves resourceVersion, so look for Plinth's traces.
    for name in env.groups["kong_nodes"] + env.groups["workers"]:
        node = env.node(name)
        assert "plinth" not in [e["manager"] for e in node["metadata"]["managedFields"]]
        assert "plinth.io/managed-taints" not in node["metadata"].get("annotations", {})
    assert "node.kong.gateway" not in env.labels(gw)


def test_changed_and_removed_labels_and_taints_follow_the_inventory_others_stay(env):
    env.register()
    gw, ceph, worker = env.host("kong_nodes"), env.host("ceph_nodes"), env.host("workers")
    env.play()
    for name in (gw, worker):
        operator_marks(env.cluster.api, name)

    env.pools["worker"]["labels"] = {"node.role": "general", "tier": "b"}
    env.pools["gateway"]["taints"] = []
    env.pools["storage"]["labels"] = {}
    env.write()
    result = env.play()

    assert result["nodes"][worker]["labels_changed"] == {"node.role": "general"}
    assert result["nodes"][worker]["labels_added"] == {"tier": "b"}
    assert result["nodes"][gw]["taints_removed"] == ["node.kong.gateway=true:NoSchedule"]
    assert result["nodes"][ceph]["labels_removed"] == ["node.ceph.storage"]
    assert env.labels(worker)["node.role"] == "general" and env.labels(worker)["tier"] == "b"
    assert "node.ceph.storage" not in env.labels(ceph)
    assert not any(t["key"] == "node.kong.gateway" for t in env.taints(gw))
    assert env.labels(gw)["node.kong.gateway"] == "true"
    for name in (gw, worker):
        assert env.labels(name)[OPERATOR_LABEL] == "x"
        assert OPERATOR_TAINT in env.taints(name)
        assert env.labels(name)["kubernetes.io/os"] == "linux"
    assert env.play()["changed"] is False


def test_diff_shows_exactly_the_label_that_will_go(env):
    env.register()
    ceph = env.host("ceph_nodes")
    env.play()
    env.pools["storage"]["labels"] = {}
    env.write()
    result = env.play("--check", "--diff")
    assert sorted(result["nodes"]) == [ceph]
    before, after = result["diff"]["before"][ceph], result["diff"]["after"][ceph]
    assert set(before["labels"].items()) - set(after["labels"].items()) == {("node.ceph.storage", "true")}
    assert set(after["labels"].items()) - set(before["labels"].items()) == set()
    assert before["taints"] == after["taints"]
    assert env.labels(ceph)["node.ceph.storage"] == "true"  # check mode


def test_labels_and_taints_the_kubelet_registered_are_removed_when_dropped(env):
    worker, gw = env.host("workers"), env.host("kong_nodes")
    gw_taint = {"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}
    env.register(**{worker: {"labels": {"node.role": "worker"}},
                    gw: {"labels": {"node.kong.gateway": "true"}, "taints": [gw_taint]}})
    first = env.play()
    assert first["nodes"][worker]["adopted"] == ["label node.role"]
    assert first["nodes"][gw]["adopted"] == ["label node.kong.gateway", "taint node.kong.gateway=true:NoSchedule"]

    env.pools["worker"]["labels"] = {}
    env.pools["gateway"] = {"group": "kong_nodes", "labels": {}, "taints": []}
    env.write()
    env.play()
    assert "node.role" not in env.labels(worker)
    assert "node.kong.gateway" not in env.labels(gw)
    assert gw_taint not in env.taints(gw)


def test_a_dropped_label_an_operator_also_sets_stays(env):
    env.register()
    worker = env.host("workers")
    env.play()
    env.cluster.api.request(
        "PATCH", "/api/v1/nodes/%s" % worker,
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": worker, "labels": {"node.role": "worker"}}},
        content_type="application/apply-patch+yaml", query={"fieldManager": "operator"})
    env.pools["worker"]["labels"] = {}
    env.write()
    result = env.play()
    assert result["nodes"][worker]["labels_released"] == ["node.role"]
    assert result["nodes"][worker]["labels_removed"] == []
    assert env.labels(worker)["node.role"] == "worker"
    assert env.play()["changed"] is False


def test_missing_nodes_fail_by_name_and_nothing_changes(env):
    present = [h for g, hosts in env.groups.items() for h in hosts if h != env.host("workers")]
    env.cluster.register_nodes([{"name": h, "control_plane": h in env.groups["control_plane"]} for h in present])
    with pytest.raises(RuntimeError) as failure:
        env.play("-e", "node_topology_wait_timeout=0")
    assert "%r not registered" % env.host("workers") in str(failure.value)
    assert "node.kong.gateway" not in env.labels(env.host("kong_nodes"))


def test_a_taint_written_between_read_and_apply_is_not_lost(env):
    """The apply carries the resourceVersion it planned from: a concurrent writer makes it fail, and
    the module reads the node again instead of overwriting the writer's taint."""
    from ansible_collections.plinth.platform.plugins.module_utils.kube_api import Api
    from ansible_collections.plinth.platform.plugins.modules import node_topology as module

    env.register()
    gw = env.host("kong_nodes")
    stale = env.node(gw)
    operator_marks(env.cluster.api, gw)  # lands after `stale` was read
    api = Api(env.cluster.admin_conf, None)
    wanted = {"labels": {"node.kong.gateway": "true"},
              "taints": [{"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}]}
    plan = module.converge_node(api, stale, wanted, {"field_manager": "plinth",
                                                      "registration_managers": ["kubelet"]})
    assert plan["changed"]
    taints = env.taints(gw)
    assert OPERATOR_TAINT in taints
    assert wanted["taints"][0] in taints

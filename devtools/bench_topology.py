#!/usr/bin/env python3
"""Time playbooks/topology.yml against a real API server with 3, 30 and 300 nodes.

    bench_topology.py [--sizes 3,30,300] [--runs 3] [--dir DIR]

For each size it starts nothing new: one test cluster (scripts/testcluster.py)
serves every size, each with its own node names. It registers the nodes as their
kubelets would, writes an inventory whose pools cover them, then times whole
`ansible-playbook playbooks/topology.yml` runs: the first (every node gets its
labels and taints), and a no-op re-run. Each figure is the median of --runs; a
first run is measured on fresh nodes each time.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import testcluster  # noqa: E402

PLAYBOOK = os.path.join(ROOT, "playbooks", "topology.yml")
BIN = os.path.dirname(sys.executable)

DEFAULT_POOLS = {
    "gateway": {"group": "kong_nodes", "labels": {"node.kong.gateway": "true"},
                "taints": [{"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}]},
    "storage": {"group": "ceph_nodes", "labels": {"node.ceph.storage": "true"},
                "taints": [{"key": "node.ceph.storage", "value": "true", "effect": "NoSchedule"}]},
    "worker": {"group": "workers", "labels": {"node.role": "worker"}, "taints": []},
}


def layout(prefix, size):
    """Group -> host names for ``size`` nodes: one control plane, then a gateway,
    a storage and a worker host in turn."""
    groups = {"control_plane": ["%s-cp-1" % prefix], "kong_nodes": [], "ceph_nodes": [], "workers": []}
    kinds = (("kong_nodes", "gw"), ("ceph_nodes", "ceph"), ("workers", "worker"))
    for index in range(size - 1):
        group, kind = kinds[index % len(kinds)]
        groups[group].append("%s-%s-%d" % (prefix, kind, index // len(kinds) + 1))
    return groups


def write_inventory(path, groups, pools=None, extra=None):
    """A minimal Plinth inventory: these groups, these pools, no components or apps."""
    os.makedirs(os.path.join(path, "group_vars", "all"), exist_ok=True)
    hosts, address = {}, 1
    for group in sorted(groups):
        members = {}
        for host in groups[group]:
            # 198.18.0.0/15 (benchmarking) has room for any size and is outside both CIDRs.
            members[host] = {"ansible_host": "198.18.%d.%d" % (address // 250, address % 250 + 1)}
            address += 1
        hosts[group] = {"hosts": members}
    document = {"all": {"children": {"k8s_cluster": {"children": hosts}}}}
    _dump(os.path.join(path, "hosts.yml"), document)
    first_cp = sorted(groups["control_plane"])[0]
    variables = {
        "plinth_environment": "bench",
        "plinth_cluster_name": "bench",
        "plinth_kubernetes_version": "1.36.3",
        "plinth_control_plane_endpoint": {"host": hosts["control_plane"]["hosts"][first_cp]["ansible_host"],
                                          "port": 6443},
        "plinth_node_pools": DEFAULT_POOLS if pools is None else pools,
        "plinth_gitops": {"repo_url": "git@git.example.com:acme/platform-gitops.git"},
        "plinth_components": dict((name, {"enabled": False}) for name in COMPONENTS),
        "plinth_apps": [],
        # Registered nodes without kubelets never ask for serving certificates: nothing to wait for.
        "kubelet_serving_certs_wait_timeout": 0,
    }
    variables.update(extra or {})
    _dump(os.path.join(path, "group_vars", "all", "platform.yml"), variables)
    return path


COMPONENTS = ("kong", "rook_ceph", "monitoring", "consul", "vault", "external_secrets",
              "cloudflared", "argocd", "cloudnative_pg", "metrics_server", "kubelet_csr_approver", "cilium")


def _dump(path, data):
    # JSON is YAML, and needs no third-party module here.
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")


def playbook_env(kubeconfig):
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    env["K8S_AUTH_KUBECONFIG"] = kubeconfig
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def run_playbook(inventory, kubeconfig, *args):
    """(seconds, parsed json callback output) of one ansible-playbook run."""
    started = time.monotonic()
    result = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory, PLAYBOOK] + list(args),
                            env=playbook_env(kubeconfig), cwd=ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    try:
        output = json.loads(result.stdout)
    except ValueError:
        output = None
    if result.returncode != 0:
        raise RuntimeError("ansible-playbook failed (%d):\n%s\n%s" % (result.returncode, result.stdout[-4000:],
                                                                     result.stderr[-2000:]))
    return seconds, output


def register(cluster, groups):
    nodes = [{"name": host, "control_plane": group == "control_plane"}
             for group, hosts in sorted(groups.items()) for host in hosts]
    started = time.monotonic()
    cluster.register_nodes(nodes)
    return time.monotonic() - started


def bench_size(cluster, workdir, size, runs):
    first, noop = [], []
    for run in range(runs):
        prefix = "b%d-%d" % (size, run)
        groups = layout(prefix, size)
        inventory = write_inventory(os.path.join(workdir, prefix), groups)
        register(cluster, groups)
        seconds, _ = run_playbook(inventory, cluster.admin_conf)
        first.append(seconds)
        seconds, output = run_playbook(inventory, cluster.admin_conf)
        noop.append(seconds)
        changed = sum(s["changed"] for s in output["stats"].values())
        if changed:
            raise RuntimeError("the re-run with %d nodes reported %d changed" % (size, changed))
        cluster.delete_nodes([h for hosts in groups.values() for h in hosts])
    return statistics.median(first), statistics.median(noop)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,30,300", type=lambda t: [int(s) for s in t.split(",")])
    parser.add_argument("--runs", default=3, type=int)
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    workdir = args.dir or tempfile.mkdtemp(prefix="plinth-bench-topology-")
    cluster = testcluster.TestCluster(os.path.join(workdir, "cluster"))
    state = cluster.start()
    try:
        print("test cluster ready in %.1f s" % state["ready_seconds"])
        print("%6s  %12s  %12s  %14s  %14s" % ("nodes", "first run", "no-op run", "first / node", "no-op / node"))
        for size in args.sizes:
            first, noop = bench_size(cluster, workdir, size, args.runs)
            print("%6d  %10.2f s  %10.2f s  %11.1f ms  %11.1f ms"
                  % (size, first, noop, 1000 * first / size, 1000 * noop / size), flush=True)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

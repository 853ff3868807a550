"""A minimal Plinth inventory for nodes registered in the test cluster, and
`ansible-playbook playbooks/topology.yml` runs against it: what the node_topology tests
and the topology benchmark share.
"""

import json
import os
import subprocess
import sys
import time

from airgap.launch import ROOT

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
              "cloudflared", "argocd", "cloudnative_pg", "metrics_server", "kubelet_csr_approver", "cilium",
              "snapshot_controller")


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

"""Plinth's benchmarks: `make bench`, or `python -m devtools.bench [render] [nodes] [topology] [vault] [lab] [gitops]`.

render    times `ansible-playbook playbooks/render.yml` (first render into an empty
          folder, then a no-op re-render) for the production example and for generated
          inventories with many business apps, plus the pure-Python part alone
          (build_spec + render), to show where the time goes and how it grows per app.
nodes     preflight.yml and nodes.yml on three real test hosts (devtools/bench_nodes.py; root).
topology  the node_topology role for 3, 30 and 300 nodes against a real API server
          (devtools/bench_topology.py).
vault     the vault stage against a real 3-node OpenBao cluster with 5, 50 and 200 namespaces:
          first run, no-op, after a server restart, after a rotation (devtools/bench_vault.py).
lab       the artifacts (cold as recorded, cached), the lab's six hosts booted, site.yml on the
          previous minor from empty hosts to every node Ready, upgrade.yml to the pinned release
          (total and per node) and its no-op re-run, a no-op site.yml, an etcd snapshot and
          restore (devtools/bench_lab.py; root).
gitops    the production example under a real Argo CD: from seeding the root Application
          to every sync wave healthy, per wave (devtools/bench_gitops.py; root).
"""

import copy
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec
from devtools import bench_gitops, bench_lab, bench_nodes, bench_topology, bench_vault

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BIN = os.path.dirname(sys.executable)
SIZES = [int(n) for n in os.environ.get("BENCH_APPS", "100 500 1000").split()]
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))


def load_inventory(name):
    """(variables, groups, hostvars) of inventories/<name>: its hosts.yml and group_vars/all/,
    where every example inventory keeps its variables."""
    folder = os.path.join(ROOT, "inventories", name)
    with open(os.path.join(folder, "hosts.yml")) as handle:
        tree = yaml.safe_load(handle)
    groups, hostvars = {}, {}

    def walk(group, body):
        body = body or {}
        members = set(body.get("hosts") or {})
        for host, values in (body.get("hosts") or {}).items():
            hostvars.setdefault(host, {}).update(values or {})
        for child, child_body in (body.get("children") or {}).items():
            members |= walk(child, child_body)
        groups[group] = sorted(set(groups.get(group, [])) | members)
        return members

    for group, body in tree.items():
        walk(group, body)
    variables = {}
    for name in sorted(os.listdir(os.path.join(folder, "group_vars", "all"))):
        if name.endswith((".yml", ".yaml")):
            with open(os.path.join(folder, "group_vars", "all", name)) as handle:
                variables.update(yaml.safe_load(handle) or {})
    return variables, groups, hostvars


def many_apps(count):
    """The production inventory with ``count`` business apps shaped like the examples."""
    variables, groups, hostvars = load_inventory("production")
    template = variables["plinth_apps"]
    apps = []
    for i in range(count):
        app = copy.deepcopy(template[i % len(template)])
        app["name"] = "%s-%04d" % (app["name"], i)
        app["namespace"] = "team-%03d" % (i // 10)
        if "ingress" in app:
            app["ingress"]["host"] = "app-%04d.example.com" % i
        app["secrets"] = dict(("%s-%s" % (app["name"], k), v) for k, v in app.get("secrets", {}).items())
        apps.append(app)
    variables["plinth_apps"] = apps
    # Hundreds of apps outgrow the example's three workers: the pools' capacity is left unstated.
    for pool in variables["plinth_node_pools"].values():
        pool.pop("capacity", None)
    return variables, groups, hostvars


def write_inventory(folder, variables, groups, hostvars):
    """Materialise (variables, groups) as an inventory directory."""
    children = dict((g, {"hosts": dict((h, hostvars.get(h) or {}) for h in hosts)})
                    for g, hosts in groups.items() if g not in ("all", "ungrouped", "k8s_cluster"))
    os.makedirs(os.path.join(folder, "group_vars", "all"))
    with open(os.path.join(folder, "hosts.yml"), "w") as handle:
        # The groups keep their parent, the cluster group the playbooks target.
        yaml.safe_dump({"all": {"children": {"k8s_cluster": {"children": children}}}}, handle)
    with open(os.path.join(folder, "group_vars", "all", "plinth.yml"), "w") as handle:
        yaml.safe_dump(variables, handle)


def playbook(inventory, dest):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               PATH=BIN + os.pathsep + os.environ["PATH"])
    start = time.perf_counter()
    subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory,
                    os.path.join(ROOT, "playbooks", "render.yml"), "-e", "plinth_render_dir=" + dest],
                   check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def python_only(inventory):
    start = time.perf_counter()
    files = gitops.render(build_spec(*inventory))
    return time.perf_counter() - start, len(files)


def measure(label, inventory_dir, inventory):
    first, noop, pure = [], [], []
    for _ in range(REPEAT):
        dest = tempfile.mkdtemp(prefix="plinth-bench-")
        try:
            first.append(playbook(inventory_dir, dest))
            noop.append(playbook(inventory_dir, dest))
        finally:
            shutil.rmtree(dest)
        seconds, files = python_only(inventory)
        pure.append(seconds)
    row = (label, files, statistics.median(first), statistics.median(noop), statistics.median(pure))
    print("%-22s %6d %10.2f %10.2f %10.3f" % row, flush=True)
    return row


def render_bench():
    print("render benchmark: median of %d runs, seconds (wall)" % REPEAT)
    print("%-22s %6s %10s %10s %10s" % ("inventory", "files", "first", "no-op", "python"))
    rows = [measure("production example", os.path.join(ROOT, "inventories", "production"),
                    load_inventory("production"))]
    with tempfile.TemporaryDirectory(prefix="plinth-bench-inv-") as tmp:
        for count in SIZES:
            inventory = many_apps(count)
            folder = os.path.join(tmp, "apps-%d" % count)
            write_inventory(folder, *inventory)
            rows.append(measure("%d apps" % count, folder, inventory))
    if len(rows) > 2:
        (_, _, f1, _, p1), (_, _, f2, _, p2) = rows[1], rows[-1]
        n1, n2 = SIZES[0], SIZES[-1]
        print("marginal cost per app (%d -> %d apps): %.1f ms first render, %.2f ms python"
              % (n1, n2, (f2 - f1) / (n2 - n1) * 1000, (p2 - p1) / (n2 - n1) * 1000))


def main(names):
    benches = {"render": render_bench, "nodes": bench_nodes.main, "topology": lambda: bench_topology.main([]),
               "vault": lambda: bench_vault.main([]), "lab": bench_lab.main, "gitops": bench_gitops.main}
    for name in names or list(benches):
        if name not in benches:
            sys.exit("unknown benchmark %r (known: %s)" % (name, ", ".join(benches)))
        benches[name]()
        print(flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

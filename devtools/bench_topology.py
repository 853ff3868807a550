#!/usr/bin/env python3
"""Time playbooks/topology.yml against a real API server with 3, 30 and 300 nodes.

    python -m devtools.bench_topology [--sizes 3,30,300] [--runs 3] [--dir DIR]

For each size it starts nothing new: one test cluster (testbed/testcluster.py)
serves every size, each with its own node names. It registers the nodes as their
kubelets would, writes an inventory whose pools cover them, then times whole
`ansible-playbook playbooks/topology.yml` runs: the first (every node gets its
labels and taints), and a no-op re-run. Each figure is the median of --runs; a
first run is measured on fresh nodes each time.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

from testbed import testcluster
from testbed.topology import layout, run_playbook, write_inventory


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

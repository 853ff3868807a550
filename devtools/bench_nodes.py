"""Benchmark the bootstrap stages on real test hosts: part of `make bench`.

Boots the molecule `nodes` scenario's hosts (systemd-nspawn, their own network
namespaces, the artifact mirror on their bridge) with the scenario's own create
playbook, then times whole ansible-playbook runs with the project's ansible.cfg,
as a user would run them (extra vars only move them to a subnet of their own):
preflight.yml, the first nodes.yml on fresh hosts, and
a no-op nodes.yml re-run (median of BENCH_NODES_REPEAT). The hosts are removed
at the end, whatever happened. Needs root and what `make test-nodes` needs.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SCENARIO = os.path.join(ROOT, "molecule", "nodes")
REPEAT = int(os.environ.get("BENCH_NODES_REPEAT", "3"))
# Hosts of their own, so the benchmark never meets a running `nodes` scenario.
ISOLATION = ["-e", "testhosts_prefix=plinth-bench", "-e", "testhosts_subnet=10.123.65.0/24",
             "-e", "testhosts_gateway=10.123.65.1"]


def env(ephemeral):
    e = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
             PATH=BIN + os.pathsep + os.environ["PATH"],
             MOLECULE_PROJECT_DIRECTORY=ROOT, MOLECULE_SCENARIO_DIRECTORY=SCENARIO,
             MOLECULE_EPHEMERAL_DIRECTORY=ephemeral,
             ANSIBLE_SSH_CONTROL_PATH_DIR=os.path.join(ephemeral, "cp"))
    return e


def playbook(ephemeral, path, *inventories):
    args = [os.path.join(BIN, "ansible-playbook"), path] + ISOLATION
    for inventory in inventories:
        args += ["-i", inventory]
    start = time.perf_counter()
    run = subprocess.run(args, env=env(ephemeral), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if run.returncode:
        sys.exit("%s failed:\n%s" % (" ".join(args), run.stdout[-4000:]))
    return time.perf_counter() - start


def main():
    print("bootstrap benchmark on 3 test hosts (cp-1, gw-1, worker-1), seconds (wall)", flush=True)
    with tempfile.TemporaryDirectory(prefix="plinth-bench-nodes-") as ephemeral:
        os.makedirs(os.path.join(ephemeral, "inventory"))
        inventories = (os.path.join(ephemeral, "inventory", "testhosts.yml"), os.path.join(SCENARIO, "inventory"))
        created = time.perf_counter()
        try:
            playbook(ephemeral, os.path.join(SCENARIO, "create.yml"), inventories[1])
            print("%-34s %8.1f" % ("create hosts + mirror", time.perf_counter() - created), flush=True)
            stage = lambda name: playbook(ephemeral, os.path.join(ROOT, "playbooks", name), *inventories)  # noqa: E731
            print("%-34s %8.1f" % ("preflight.yml", stage("preflight.yml")), flush=True)
            print("%-34s %8.1f" % ("nodes.yml, first converge", stage("nodes.yml")), flush=True)
            noop = [stage("nodes.yml") for _ in range(REPEAT)]
            print("%-34s %8.1f   (median of %d: %s)" % ("nodes.yml, no-op re-run", statistics.median(noop),
                                                        REPEAT, ", ".join("%.1f" % s for s in noop)), flush=True)
        finally:
            playbook(ephemeral, os.path.join(SCENARIO, "destroy.yml"), inventories[1])


if __name__ == "__main__":
    main()

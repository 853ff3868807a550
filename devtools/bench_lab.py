"""Benchmark the lab: part of `make bench` (`python -m devtools.bench lab`).

Times, as a user meets them:
- the artifacts: the cold build time each cached binary recorded when it was built
  (build-info.json of the Kubernetes, etcd and CNI plugin caches), and the cached pass
  `testbed/lab.py up` makes over them (every binary and image found, nothing rebuilt);
  BENCH_LAB_COLD=1 builds everything into an empty cache instead (about half an hour);
- booting the lab's six hosts and serving the mirror;
- the bootstrap: `site.yml` on the fresh hosts until every node is Ready, on the release before
  the pinned one (BENCH_LAB_FROM_VERSION, default the lab scenario's);
- the upgrade to the pinned release (`upgrade.yml`), in total and per node (each control-plane
  host, then each batch of the others), and a no-op re-run of it;
- a no-op `site.yml` re-run (median of BENCH_LAB_REPEAT, default 1);
- Day 2 on the three control-plane hosts: an etcd snapshot on demand (`etcd_backup.yml`, taken,
  checked and fetched) and its restore (`etcd_restore.yml`, until every API server is ready again).

The lab gets a prefix, subnet, API port and inventory of its own (never a lab started with
`make lab`) and is removed at the end, whatever happened. Needs root.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from airgap import cache, launch
from devtools.test import lab_from_version
from testbed import lab

REPEAT = int(os.environ.get("BENCH_LAB_REPEAT", "1"))
PREFIX = "plinth-benchlab"
UPGRADE_PLAYS = ("PLAY [Upgrade the control-plane hosts", "PLAY [Upgrade the other nodes")


def from_version():
    """The release the upgrade starts from: the one molecule/lab/molecule.yml names."""
    return os.environ.get("BENCH_LAB_FROM_VERSION") or lab_from_version()


def recorded_cold_seconds(cache):
    """(label, seconds) of every cache that recorded its build times."""
    rows = []
    for product in ("kubernetes", "etcd", "cni-plugins"):
        folder = os.path.join(cache, product)
        for version in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            path = os.path.join(folder, version, "build-info.json")
            if os.path.exists(path):
                with open(path) as handle:
                    binaries = json.load(handle).get("binaries", {})
                rows.append(("%s %s (%d binaries)" % (product, version, len(binaries)),
                             sum(b.get("build_seconds", 0) for b in binaries.values())))
    return rows


def build_artifacts(version, env, **kw):
    """lab.py's own artifact step in a process of its own (env may name another cache); seconds."""
    return timed(["env", "PYTHONPATH=" + launch.import_path(), sys.executable, "-c",
                  "from testbed import lab; lab.build_artifacts(%r)" % version],
                 env=env, stdout=subprocess.DEVNULL, **kw)


def timed(args, **kw):
    start = time.perf_counter()
    subprocess.run(args, check=True, **kw)
    return time.perf_counter() - start


def main():
    version, previous = lab.kubernetes_version(), from_version()
    print("lab benchmark: 3 control-plane hosts, a gateway, a storage host, a worker; seconds (wall)", flush=True)
    env = dict(os.environ)
    if os.environ.get("BENCH_LAB_COLD") == "1":
        cold_cache = tempfile.mkdtemp(prefix="plinth-bench-cache-")
        env["PLINTH_CACHE"] = cold_cache
        cold = sum(build_artifacts(release, env) for release in (previous, version))
        print("%-44s %8.1f" % ("artifacts of 2 releases, cold (empty cache)", cold), flush=True)
    else:
        for label, seconds in recorded_cold_seconds(cache.root()):
            print("%-44s %8.1f   (recorded when built)" % ("cold build: " + label, seconds), flush=True)
    cached = sum(build_artifacts(release, env, stderr=subprocess.DEVNULL) for release in (previous, version))
    print("%-44s %8.1f" % ("artifacts of 2 releases, cached", cached), flush=True)

    with tempfile.TemporaryDirectory(prefix="plinth-bench-lab-") as tmp:
        inventory = os.path.join(tmp, "inventory")
        os.makedirs(inventory)
        os.symlink(os.path.join(lab.INVENTORY, "group_vars"), os.path.join(inventory, "group_vars"))
        common = launch.module_command("testbed.lab", "--prefix", PREFIX, "--inventory", inventory,
                                       "--kubeconfig", os.path.join(tmp, "admin.conf"))
        quiet = dict(env=env, stdout=subprocess.DEVNULL)
        try:
            boot = timed(common + ["up", "--hosts-only", "--subnet", "10.123.68.0/24", "--api-port", "16448",
                                   "--kubernetes-version", previous], stderr=subprocess.DEVNULL, **quiet)
            print("%-44s %8.1f" % ("boot 6 hosts + serve the mirror (cached)", boot), flush=True)
            start = time.perf_counter()
            subprocess.run(common + ["site", "-e", "plinth_kubernetes_version=" + previous], check=True, **quiet)
            site = time.perf_counter() - start
            lab.wait_ready(os.path.join(os.path.dirname(sys.executable), "kubectl"),
                           os.path.join(tmp, "admin.conf"), 6, 600)
            ready = time.perf_counter() - start
            print("%-44s %8.1f   (site.yml %.1f)" % ("bootstrap %s: empty hosts to 6 Ready" % previous, ready, site),
                  flush=True)
            print("%-44s %8.1f" % ("make lab equivalent (boot + bootstrap)", boot + ready), flush=True)
            upgrade(common, previous, version, env)
            noop = [timed(common + ["site"], **quiet) for _ in range(REPEAT)]
            print("%-44s %8.1f   (median of %d: %s)" % ("site.yml, no-op re-run", statistics.median(noop), REPEAT,
                                                        ", ".join("%.1f" % s for s in noop)), flush=True)
            day2(common, tmp, quiet)
        finally:
            subprocess.run(common + ["down"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def upgrade(common, previous, version, env):
    """upgrade.yml from the previous release to the pinned one: in total, per node, then a no-op re-run."""
    play = common + ["play", os.path.join(lab.ROOT, "playbooks", "upgrade.yml")]
    start = time.perf_counter()
    batches = []
    with subprocess.Popen(play, env=env, stdout=subprocess.PIPE, text=True) as run:
        host = None
        for line in run.stdout:
            if line.startswith(UPGRADE_PLAYS):
                batches.append([time.perf_counter(), None])
                host = None
            elif batches and host is None and line.startswith(("ok: [", "changed: [")):
                host = batches[-1][1] = line.split("[", 1)[1].split("]", 1)[0].split(" ")[0]
    if run.returncode:
        sys.exit("bench: upgrade.yml failed (exit %d)" % run.returncode)
    total = time.perf_counter() - start
    ends = [began for began, _ in batches[1:]] + [start + total]
    per_node = ["%s %.0f" % (name, end - began) for (began, name), end in zip(batches, ends)]
    print("%-44s %8.1f   (%s)" % ("upgrade %s to %s, 6 nodes" % (previous, version), total, ", ".join(per_node)),
          flush=True)
    print("%-44s %8.1f" % ("upgrade.yml, no-op re-run", timed(play, env=env, stdout=subprocess.DEVNULL)), flush=True)


def day2(common, tmp, quiet):
    """An etcd snapshot on demand, then its restore onto the three control-plane hosts."""
    fetched = os.path.join(tmp, "etcd-backups")
    play = common + ["play"]
    backup = timed(play + [os.path.join(lab.ROOT, "playbooks", "etcd_backup.yml"),
                           "-e", "etcd_backup_fetch_dir=" + fetched], **quiet)
    snapshot = os.path.join(fetched, [name for name in os.listdir(fetched) if name.endswith(".db")][0])
    print("%-44s %8.1f   (%.1f MiB)" % ("etcd snapshot on demand, fetched", backup,
                                        os.path.getsize(snapshot) / 2.0 ** 20), flush=True)
    restore = timed(play + [os.path.join(lab.ROOT, "playbooks", "etcd_restore.yml"),
                            "-e", "etcd_restore_snapshot=" + snapshot, "-e", "etcd_restore_confirm=lab"], **quiet)
    print("%-44s %8.1f" % ("etcd restore, 3 control-plane hosts to ready", restore), flush=True)


if __name__ == "__main__":
    main()

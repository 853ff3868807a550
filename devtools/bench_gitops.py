"""How long the platform takes to converge under a real Argo CD: the molecule `gitops`
scenario's create and converge, then, read from the API, the time from the root
Application's creation (the gitops stage seeding it) to the last child Application turning
Healthy, and the same per sync wave. Root; the builds (Kubernetes, kwok, Argo CD) are cached.

    python -m devtools.bench gitops
"""

import datetime
import os
import subprocess
import sys
import time

from airgap.launch import ROOT
from testbed import testcluster

BIN = os.path.dirname(sys.executable)
APPLICATIONS = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"
WAVE = "argocd.argoproj.io/sync-wave"


def molecule(action, env):
    start = time.perf_counter()
    subprocess.run([os.path.join(BIN, "molecule"), action, "-s", "gitops"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def stamp(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def waves(apps):
    """{wave: (first created, last healthy)} of the child Applications, and the root's creation."""
    root = [a for a in apps if a["metadata"]["name"].endswith("-root")][0]
    found = {}
    for app in apps:
        if app is root:
            continue
        wave = int(app["metadata"].get("annotations", {}).get(WAVE, "0"))
        created = stamp(app["metadata"]["creationTimestamp"])
        # The last time its health changed: a wave counts as healthy once its last app turned so.
        healthy = stamp(app["status"]["health"]["lastTransitionTime"])
        first, last = found.get(wave, (created, healthy))
        found[wave] = (min(first, created), max(last, healthy))
    return stamp(root["metadata"]["creationTimestamp"]), found


def main():
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    try:
        molecule("destroy", env)
        create = molecule("create", env)
        converge = molecule("converge", env)
        # The scenario's ephemeral folder is molecule's own: find the cluster by its state file.
        ephemeral = [os.path.join(d, "cluster") for d in _ephemeral_dirs()
                     if os.path.exists(os.path.join(d, "cluster", "state.json"))][0]
        apps = testcluster.TestCluster(ephemeral).api.request("GET", APPLICATIONS)["items"]
        seeded, per_wave = waves(apps)
        print("gitops benchmark (seconds, one run)")
        print("%-34s %8.1f" % ("molecule create (cluster, mirror)", create))
        print("%-34s %8.1f" % ("molecule converge (bootstrap + wait)", converge))
        for wave, (first, last) in sorted(per_wave.items()):
            print("  wave %-3d created +%-5.0f healthy +%.0f" % (wave, (first - seeded).total_seconds(),
                                                               (last - seeded).total_seconds()))
        done = max(last for _first, last in per_wave.values())
        print("%-34s %8.0f" % ("root seeded -> every wave healthy", (done - seeded).total_seconds()))
    finally:
        molecule("destroy", env)


def _ephemeral_dirs():
    base = os.path.join(os.path.expanduser("~"), ".ansible", "tmp")
    return [os.path.join(base, d) for d in os.listdir(base) if d.endswith(".gitops")] if os.path.isdir(base) else []


if __name__ == "__main__":
    main()

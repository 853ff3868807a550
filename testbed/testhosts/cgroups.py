"""A cgroup of its own in every hierarchy for each host, so that containerd and kubelet
work on cgroup v1 without the hosts managing each other's services.
"""

import os
import signal
import time

from testbed.testhosts.common import log

# ---------------------------------------------------------------------------- cgroups
#
# The kernel may run cgroup v1, where nspawn mounts the controller hierarchies read-only
# and containerd/kubelet cannot work. Binding the machine's whole /sys/fs/cgroup in would
# let every host's systemd manage the same cgroups (each would stop the others'
# services). So each host gets a cgroup of its own in every hierarchy, nspawn starts in
# it (and roots the host's cgroup namespace there), and the host's /sys/fs/cgroup is a
# tmpfs holding read-write binds of exactly those subtrees: the layout a host booted on
# its own would see.


def cgroup_hierarchies():
    """[(mount point, this process's cgroup path, tracks processes?)] for every hierarchy."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fstype, _, options = right.split()[:3]
            if fstype in ("cgroup", "cgroup2"):
                mounts.append((fstype, left.split()[4], set(options.split(","))))
    found = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for fstype, point, options in mounts:
                if fstype == "cgroup2" and controllers == "":
                    found.append((point, path, True))
                    break
                if fstype == "cgroup" and controllers and set(controllers.split(",")) <= options:
                    found.append((point, path, controllers == "name=systemd"))
                    break
    return found


def make_cgroups(name):
    """The host's cgroups: {mount point name: (cgroup made, subtree the host sees)}."""
    made = {}
    for point, path, tracking in cgroup_hierarchies():
        cgroup = os.path.join(point, path.lstrip("/"), name)
        os.makedirs(cgroup, exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # an empty cpuset admits no process
            mine = os.path.join(cgroup, knob)
            if os.path.exists(mine) and not open(mine).read().strip():
                with open(os.path.join(os.path.dirname(cgroup), knob)) as f:
                    value = f.read()
                with open(mine, "w") as f:
                    f.write(value)
        # In the hierarchies systemd tracks processes with, nspawn (--keep-unit) moves
        # the payload into a "payload" child and roots the cgroup namespace there.
        seen = os.path.join(cgroup, "payload") if tracking else cgroup
        os.makedirs(seen, exist_ok=True)
        made[os.path.basename(point)] = (cgroup, seen)
    return made


def enter_cgroups(cgroups):
    def enter():
        for cgroup in cgroups:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
    return enter


def cgroup_pids(cgroup):
    pids = set()
    for top, _, files in os.walk(cgroup):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(top, "cgroup.procs")) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                pass
    return pids


def remove_cgroups(cgroups):
    """Kill whatever is left in the host's cgroups, then remove them, deepest first."""
    for cgroup in cgroups:
        for _ in range(50):
            if not os.path.isdir(cgroup):
                break
            for pid in cgroup_pids(cgroup):
                log("killing leftover process %d" % pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                for top, dirs, _ in os.walk(cgroup, topdown=False):
                    os.rmdir(top)
            except OSError:
                time.sleep(0.1)

#!/usr/bin/env python3
"""A throwaway multi-node Kubernetes lab on this machine, built by site.yml from air-gapped artifacts.

    lab.py up      [--control-planes 3] [--gateways 1] [--storage 1] [--workers 1]
                   [--prefix plinth-lab] [--subnet 10.123.66.0/24] [--api-port 16443] [--hosts-only]
                   [--kubernetes-version 1.35.4]
    lab.py site    [ansible-playbook options...]     run site.yml against the lab again
    lab.py play    PLAYBOOK [options...]             run another playbook (playbooks/etcd_backup.yml) against it
    lab.py status
    lab.py down

`up` builds (once, cached by version) kubeadm, kubelet, kubectl, crictl, the CNI plugins and
the images kubeadm deploys, lays them out as the artifact mirror an air-gapped site hosts, boots
the lab hosts with systemd-nspawn (testbed/testhosts: each host in a network namespace of its
own, joined by a bridge in one more namespace; nothing on the machine's own network), serves the
mirror on that bridge, writes the hosts into inventories/lab/ beside its committed group_vars,
opens 127.0.0.1:<api-port> to the API's virtual IP (testbed/forward.py), and runs
`ansible-playbook site.yml -i inventories/lab`, unchanged, until every node is Ready. Then:

    kubectl --kubeconfig build/lab/admin.conf get nodes -o wide

(`up` puts the kubectl it built in the project's .venv/bin.) With --kubernetes-version the lab
is built on that release (the previous minor, say) with the pinned one's artifacts served beside
it, and `ansible-playbook -i inventories/lab playbooks/upgrade.yml` moves it to the pinned one.
`down` removes every trace:
hosts, namespaces, mounts, cgroups, the mirror server, the forwarder, the generated inventory
files and build/lab. Needs root and what `make test-nodes` needs.
"""

import argparse
import filecmp
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import time

from airgap import cache, launch
from testbed import forward

ROOT = launch.ROOT

INVENTORY = os.path.join(ROOT, "inventories", "lab")
BUILD = os.path.join(ROOT, "build", "lab")
# The first host takes .11 (testbed/testhosts); the API's virtual IP sits apart from them.
VIP_OFFSET = 100
MIRROR_PORT = 8088
KUBE_VIP_IMAGE = "ghcr.io/kube-vip/kube-vip:v1.2.2"
IMAGES = "kube-apiserver,kube-controller-manager,kube-scheduler,kube-proxy,etcd,coredns,pause,kube-vip"
POOLS = (("control_planes", "cp", "control_plane"), ("gateways", "gw", "kong_nodes"),
         ("storage", "st", "ceph_nodes"), ("workers", "worker", "workers"))


def log(message):
    print("lab: " + message, flush=True)


def die(message):
    sys.exit("lab: " + message)


def state_dir(prefix):
    return os.path.join(cache.root(), "lab", prefix)


def run(cmd, **kw):
    result = subprocess.run(cmd, **kw)
    if result.returncode:
        die("%s failed (exit %d)" % (" ".join(cmd[:3]), result.returncode))
    return result


def platform():
    """The lab's committed platform settings (inventories/lab/group_vars/all/platform.yml)."""
    import yaml

    with open(os.path.join(INVENTORY, "group_vars", "all", "platform.yml")) as handle:
        return yaml.safe_load(handle)


def kubernetes_version():
    """The version the lab's committed group_vars pin."""
    return str(platform()["plinth_kubernetes_version"])


def layout(args):
    """testhosts --hosts text for the pool sizes asked for."""
    hosts = []
    for option, stem, group in POOLS:
        count = getattr(args, option)
        if count < 0:
            die("--%s: got %d; must be 0 or more" % (option.replace("_", "-"), count))
        hosts += ["%s-%d:%s" % (stem, index, group) for index in range(1, count + 1)]
    if args.control_planes < 1 or args.control_planes % 2 == 0:
        die("--control-planes: got %d; must be odd (etcd needs a majority): 1, 3 or 5" % args.control_planes)
    return ",".join(hosts)


def testhosts(args, *rest):
    return launch.module_command("testbed.testhosts", "--prefix", args.prefix,
                                 "--state-dir", os.path.join(state_dir(args.prefix), "hosts"), *rest)


def mirror(args, *rest):
    state = state_dir(args.prefix)
    return launch.module_command("airgap.artifact_mirror", "--mirror", os.path.join(state, "mirror"),
                                 "--pid-file", os.path.join(state, "mirror.pid"), *rest)


def forward_pidfile(args):
    return os.path.join(state_dir(args.prefix), "api-forward.pid")


def build_artifacts(version):
    """Binaries and images, each built once per version (cached outside the clone)."""
    start = time.perf_counter()
    run(launch.module_command("airgap.build_kubernetes", "--version", version))
    run(launch.module_command("airgap.build_kubernetes", "--version", version, "--binaries", "cni-plugins"))
    run(launch.module_command("airgap.build_images", "--version", version, "--extra-images", KUBE_VIP_IMAGE))
    log("artifacts ready in %.1f s" % (time.perf_counter() - start))


def pool_labels():
    """The label keys of the lab's node pools, as its committed group_vars name them."""
    pools = platform()["plinth_node_pools"]
    return sorted(set(key for pool in pools.values() for key in pool.get("labels", {})))


def install_kubectl(version):
    built = os.path.join(cache.root(), "kubernetes", "v" + version, "bin", "kubectl")
    target = os.path.join(os.path.dirname(sys.executable), "kubectl")
    if os.path.exists(built) and (not os.path.exists(target) or not filecmp.cmp(built, target, shallow=False)):
        shutil.copy2(built, target)
    return target


def lab_vars(args, subnet):
    network = ipaddress.ip_network(subnet)
    gateway = str(network.network_address + 1)
    state = state_dir(args.prefix)
    return {
        "control_plane_kubeconfig_dest": args.kubeconfig,
        "lab_gateway": gateway,
        "lab_api_vip": str(network.network_address + VIP_OFFSET),
        "lab_api_port": args.api_port,
        "lab_mirror_url": "http://%s:%d" % (gateway, MIRROR_PORT),
        "lab_gitops_repo": os.path.join(state, "gitops.git"),
        "lab_state_dir": state,
    }


def write_lab_file(path, values):
    lines = ["---", "# Generated by testbed/lab.py for the hosts in hosts.yml; `make lab-destroy` removes it.",
             "all:", "  vars:"]
    lines += ["    %s: %s" % (key, json.dumps(value)) for key, value in sorted(values.items())]
    with open(path + ".tmp", "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.rename(path + ".tmp", path)


def saved(args):
    path = os.path.join(state_dir(args.prefix), "lab.json")
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def up(args):
    if os.geteuid() != 0:
        die("must run as root (network namespaces, systemd-nspawn)")
    hosts = layout(args)
    previous = saved(args)
    if previous and (previous["hosts"], previous["subnet"]) != (hosts, args.subnet):
        die("a lab with other hosts (%s on %s) is up; `make lab-destroy` first" % (previous["hosts"],
                                                                                   previous["subnet"]))
    pinned = kubernetes_version()
    version = (args.kubernetes_version or pinned).lstrip("v")
    values = lab_vars(args, args.subnet)
    state = state_dir(args.prefix)
    os.makedirs(state, exist_ok=True)
    with open(os.path.join(state, "lab.json"), "w") as handle:
        json.dump({"hosts": hosts, "subnet": args.subnet, "api_port": args.api_port,
                   "inventory": args.inventory, "kubeconfig": args.kubeconfig}, handle)

    started = time.perf_counter()
    # The pinned release is always served: upgrade.yml reads it from the mirror.
    for release in sorted({version, pinned}):
        build_artifacts(release)
        run(mirror(args, "layout", "--version", release, "--binaries", "kubeadm,kubelet,kubectl,crictl",
                   "--images", IMAGES), stdout=subprocess.DEVNULL)
    booted = time.perf_counter()
    run(testhosts(args, "up", "--hosts", hosts, "--subnet", args.subnet, "--root", "overlay"))
    run(testhosts(args, "inventory", "-o", os.path.join(args.inventory, "hosts.yml")), stdout=subprocess.DEVNULL)
    write_lab_file(os.path.join(args.inventory, "lab.yml"), values)
    run(mirror(args, "serve", "--netns", args.prefix + "-net",
               "--address", "%s:%d" % (values["lab_gateway"], MIRROR_PORT)), stdout=subprocess.DEVNULL)
    if not os.path.isdir(values["lab_gitops_repo"]):
        run(["git", "init", "--quiet", "--bare", "--initial-branch=main", values["lab_gitops_repo"]])
    forward.start(args.prefix + "-net", "127.0.0.1:%d" % args.api_port,
                  "%s:6443" % values["lab_api_vip"], forward_pidfile(args),
                  log=os.path.join(state, "api-forward.log"))
    kubectl = install_kubectl(pinned)
    log("%d hosts booted and the mirror served in %.1f s" % (len(hosts.split(",")), time.perf_counter() - booted))
    if args.hosts_only:
        return
    site(args, [] if version == pinned else ["-e", "plinth_kubernetes_version=" + version])
    wait_ready(kubectl, args.kubeconfig, len(hosts.split(",")), args.ready_timeout)
    log("lab ready in %.1f s (artifacts cached: %s)" % (time.perf_counter() - started, cache.root()))
    show = [kubectl, "--kubeconfig", args.kubeconfig, "get", "nodes", "-o", "wide", "-L", ",".join(pool_labels())]
    subprocess.call(show)
    print("\n" + " ".join([os.path.relpath(kubectl), "--kubeconfig", os.path.relpath(args.kubeconfig)] + show[3:]),
          flush=True)


def site(args, extra, playbook=os.path.join(ROOT, "site.yml")):
    lab = saved(args) or die("no lab is up: `make lab` first")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), K8S_AUTH_KUBECONFIG=lab["kubeconfig"],
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    start = time.perf_counter()
    run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), os.path.abspath(playbook),
         "-i", lab["inventory"]] + list(extra), cwd=ROOT, env=env)
    log("%s took %.1f s" % (os.path.basename(playbook), time.perf_counter() - start))


def ready_nodes(kubectl, kubeconfig):
    out = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "get", "nodes", "-o", "json"],
                         capture_output=True, text=True, timeout=30)
    if out.returncode:
        return None
    nodes = json.loads(out.stdout)["items"]
    return [n["metadata"]["name"] for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))], nodes


def wait_ready(kubectl, kubeconfig, count, timeout):
    deadline = time.monotonic() + timeout
    while True:
        found = ready_nodes(kubectl, kubeconfig)
        if found and len(found[0]) == count:
            return
        if time.monotonic() > deadline:
            die("not every node is Ready after %d s: %s" % (timeout, found[0] if found else "API unreachable"))
        time.sleep(2)


def down(args):
    lab = saved(args) or {"inventory": args.inventory, "kubeconfig": args.kubeconfig}
    forward.stop(forward_pidfile(args))
    subprocess.call(mirror(args, "stop"), stdout=subprocess.DEVNULL)
    hosts_state = os.path.join(state_dir(args.prefix), "hosts")
    if os.path.isdir(hosts_state):
        run(testhosts(args, "down"))
    for path in (os.path.join(lab["inventory"], "hosts.yml"), os.path.join(lab["inventory"], "lab.yml"),
                 lab["kubeconfig"]):
        if os.path.exists(path):
            os.remove(path)
    for folder in (BUILD, os.path.dirname(BUILD)):
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
    shutil.rmtree(state_dir(args.prefix), ignore_errors=True)
    log("removed")


def status(args):
    lab = saved(args)
    if not lab:
        print("no lab")
        return 1
    print("hosts: %s\nsubnet: %s\nAPI: https://127.0.0.1:%d" % (lab["hosts"], lab["subnet"], lab["api_port"]))
    return subprocess.call(testhosts(args, "status"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prefix", default=os.environ.get("PLINTH_LAB_PREFIX", "plinth-lab"),
                        help="name of the lab's hosts and namespaces")
    parser.add_argument("--inventory", default=INVENTORY,
                        help="inventory folder: its group_vars and the hosts.yml and lab.yml written for the lab")
    parser.add_argument("--kubeconfig", default=os.path.join(BUILD, "admin.conf"),
                        help="where the admin kubeconfig is written (mode 0600)")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="build the artifacts, boot the hosts and run site.yml")
    start.add_argument("--control-planes", type=int, default=3)
    start.add_argument("--gateways", type=int, default=1)
    start.add_argument("--storage", type=int, default=1)
    start.add_argument("--workers", type=int, default=1)
    start.add_argument("--subnet", default="10.123.66.0/24")
    start.add_argument("--api-port", type=int, default=16443, help="127.0.0.1 port that leads to the API")
    start.add_argument("--ready-timeout", type=int, default=300, help="seconds to wait for every node to be Ready")
    start.add_argument("--hosts-only", action="store_true", help="boot the hosts and stop before site.yml")
    start.add_argument("--kubernetes-version", help="build the lab on this release instead of the one the lab's "
                       "group_vars pin (plinth_kubernetes_version), e.g. the previous minor to try upgrade.yml")
    again = sub.add_parser("site", help="run site.yml against the lab again")
    again.add_argument("extra", nargs=argparse.REMAINDER)
    other = sub.add_parser("play", help="run another playbook against the lab")
    other.add_argument("playbook")
    other.add_argument("extra", nargs=argparse.REMAINDER)
    sub.add_parser("status")
    sub.add_parser("down")
    # argparse leaves ansible-playbook's own options (site -e x=y) to the caller.
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command not in ("site", "play"):
        parser.error("unrecognized arguments: %s" % " ".join(unknown))
    if unknown:
        args.extra = unknown + args.extra
    args.inventory, args.kubeconfig = os.path.abspath(args.inventory), os.path.abspath(args.kubeconfig)
    if args.command == "up":
        return up(args)
    if args.command == "site":
        return site(args, args.extra)
    if args.command == "play":
        return site(args, args.extra, args.playbook)
    if args.command == "status":
        return status(args)
    return down(args)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Real Debian 12 test hosts for the `nodes` scenario and a lab, booted with systemd-nspawn.

    testhosts.py [--prefix P] [--state-dir DIR] up [--hosts cp-1:control_plane,...]
                                                   [--subnet CIDR] [--root copy|overlay]
    testhosts.py [--prefix P] [--state-dir DIR] inventory [-o PATH]
    testhosts.py [--prefix P] [--state-dir DIR] status
    testhosts.py [--prefix P] [--state-dir DIR] exec NAME [-- COMMAND...]
    testhosts.py [--prefix P] [--state-dir DIR] ssh NAME [-- COMMAND...]
    testhosts.py [--prefix P] [--state-dir DIR] down
    testhosts.py build [--rebuild]           build (or find) the cached rootfs tarball

Each host boots a cached debootstrap rootfs (testbed/testhosts/packages.txt) with
`systemd-nspawn --boot`, on a plain copy of it or an overlay over one shared unpacked
copy, in a network namespace of its own (`<prefix>-<name>`). A veth pair joins it to a
bridge that lives in one more namespace (`<prefix>-net`), which holds the subnet's first
address and is every host's default route. The subnet exists only inside these
namespaces: nothing is added to the machine's own network, and nothing is routed out of
it. Ansible reaches a host over SSH with a ProxyCommand that connects from inside the
host's namespace.

Everything a run creates is recorded in the state directory (default
${PLINTH_CACHE:-~/.cache/plinth}/testhosts/<prefix>); `down` removes all of it and is
safe to repeat. Must run as root (namespaces, nspawn) on a machine with cgroup v1 or
hybrid hierarchies.
"""

import argparse
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from airgap import cache, launch

PACKAGES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testhosts", "packages.txt")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Bump when the rootfs recipe below changes, so cached tarballs are rebuilt.
RECIPE = "4"
SLIM_EXCLUDE = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
                "/usr/share/locale/*", "/usr/share/lintian/*")
DEFAULT_HOSTS = "cp-1:control_plane,gw-1:kong_nodes,worker-1:workers"
DEFAULT_SUBNET = "10.123.0.0/24"
KNOWN_GROUPS = ("control_plane", "kong_nodes", "ceph_nodes", "workers")
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$")
PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
FIRST_HOST_OFFSET = 11
# Host-wide kernel settings kubelet sets to these values at start (and fails when it
# cannot). /proc/sys is read-only in a host and the machine's values must not change,
# so a host sees these values in files bound over the entries (covered_sysctls).
KUBELET_SYSCTLS = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
                   "kernel/panic_on_oops": "1", "kernel/keys/root_maxkeys": "1000000",
                   "kernel/keys/root_maxbytes": "25000000"}
COVER_DIR = "/var/lib/plinth-testhost/sysctl"
STATE_FILE = "state.json"
BUILD_SPACE = 1 << 30  # debootstrap's downloads, the tree and the tarball
HOST_SPACE_MARGIN = 256 << 20
NSPAWN_RUN = "/run/systemd/nspawn"


def log(msg):
    print("testhosts: %s" % msg, file=sys.stderr, flush=True)


def die(msg):
    sys.exit("testhosts: error: %s" % msg)


def run(cmd, check=True, quiet=False, **kw):
    if not quiet:
        log("$ " + " ".join(shlex.quote(c) for c in cmd))
    return subprocess.run(cmd, check=check, **kw)


# ---------------------------------------------------------------------------- rootfs


def read_packages(path=PACKAGES_FILE):
    with open(path) as f:
        names = [line.split("#", 1)[0].strip() for line in f]
    return sorted({n for n in names if n})


def rootfs_key(packages):
    text = "\n".join(["debian-12", SUITE, "recipe " + RECIPE] + packages)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def apt_source_files():
    files = ["/etc/apt/sources.list"]
    sdir = "/etc/apt/sources.list.d"
    if os.path.isdir(sdir):
        files += [os.path.join(sdir, n) for n in sorted(os.listdir(sdir))
                  if n.endswith((".list", ".sources"))]
    return files


def apt_sources(files):
    """(uri, suites) of every enabled source in apt's files, deb822 and one-line."""
    found = []
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.split()
                if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"]) == ["no"]:
                    continue
                for uri in fields.get("uris", []):
                    found.append((uri.rstrip("/"), fields.get("suites", [])))
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    found.append((words[1].rstrip("/"), [words[2]]))
    return found


def debian_mirrors(files=None):
    """The Debian mirror and security mirror this machine's apt uses (defaults otherwise)."""
    sources = apt_sources(apt_source_files() if files is None else files)

    def first(suite, path_end):
        # Debian's own archive first, then any source of the suite (a local mirror).
        for wanted in (lambda uri: uri.endswith(path_end), lambda uri: True):
            for uri, suites in sources:
                if suite in suites and wanted(uri):
                    return uri
        return None

    return (first(SUITE, "/debian") or DEFAULT_MIRROR,
            first(SUITE + "-security", "/debian-security") or DEFAULT_SECURITY_MIRROR)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def in_chroot(root, script):
    """Run a shell script chrooted into root, with /proc and /dev mounted in a private mount
    namespace, so nothing stays mounted on the machine whatever happens."""
    wrapper = ("set -e; mount -t proc proc {r}/proc; mount --rbind /dev {r}/dev; "
               "exec chroot {r} /bin/sh -ec {s}").format(r=shlex.quote(root), s=shlex.quote(script))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
    run(["unshare", "--mount", "--propagation", "private", "sh", "-c", wrapper], env=env)


def customise_rootfs(root, mirror, security):
    """What every test host shares; per-host identity (hostname, keys, ids) comes at `up`."""
    os.remove(os.path.join(root, "etc", "apt", "sources.list"))
    write(os.path.join(root, "etc", "apt", "sources.list.d", "debian.sources"), (
        "Types: deb\nURIs: {m}\nSuites: {s} {s}-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: {sec}\nSuites: {s}-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n").format(
            m=mirror, sec=security, s=SUITE))
    # Hosts may each get a full copy: keep it small as Debian's container images do
    # (no manuals, translations or documentation; package indexes stay compressed).
    write(os.path.join(root, "etc", "dpkg", "dpkg.cfg.d", "plinth-testhost-slim"),
          "".join("path-exclude=%s\n" % p for p in SLIM_EXCLUDE)
          + "path-include=/usr/share/doc/*/copyright\n")
    write(os.path.join(root, "etc", "apt", "apt.conf.d", "plinth-testhost-gzip-indexes"),
          'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n')
    shutil.rmtree(os.path.join(root, "var", "lib", "apt", "lists"))
    os.makedirs(os.path.join(root, "var", "lib", "apt", "lists", "partial"))
    # No service may start inside the chroot while packages are upgraded.
    write(os.path.join(root, "usr", "sbin", "policy-rc.d"), "#!/bin/sh\nexit 101\n", 0o755)
    in_chroot(root, "apt-get -q update && apt-get -q -y -o Dpkg::Options::=--force-confold "
                    "dist-upgrade && apt-get clean")
    os.remove(os.path.join(root, "usr", "sbin", "policy-rc.d"))
    in_chroot(root, "find /usr/share/doc -type f ! -name copyright -delete; "
                    "find /usr/share/doc -type d -empty -delete; "
                    "rm -rf /usr/share/man/* /usr/share/info/* /usr/share/lintian/*; "
                    "find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias "
                    "-exec rm -rf {} +")
    # Identity is per host: machine-id and SSH host keys are written at `up`.
    write(os.path.join(root, "etc", "machine-id"), "")
    for name in os.listdir(os.path.join(root, "etc", "ssh")):
        if name.startswith("ssh_host_"):
            os.remove(os.path.join(root, "etc", "ssh", name))
    # The hosts reach no name server; an empty resolv.conf fails lookups at once
    # instead of waiting for timeouts.
    write(os.path.join(root, "etc", "resolv.conf"), "# test host: no name server\n")
    write(os.path.join(root, "etc", "fstab"), "# test host: no file systems to mount\n")
    # Root logs in with the run's key only.
    os.makedirs(os.path.join(root, "root", ".ssh"), mode=0o700, exist_ok=True)


def need_space(path, needed, what):
    """Refuse before filling the disk rather than half-way through."""
    while not os.path.exists(path):
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    if free < needed:
        die("%s needs about %d MiB free under %s, only %d MiB are" % (
            what, needed >> 20, path, free >> 20))


def build_rootfs(rebuild=False):
    packages = read_packages()
    outdir = os.path.join(cache.root(), "rootfs")
    tarball = os.path.join(outdir, "debian-12-%s.tar" % rootfs_key(packages))
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(tarball) and not rebuild:
            return tarball
        shutil.rmtree(tarball[:-len(".tar")], ignore_errors=True)
        for tool in ("debootstrap", "systemd-nspawn"):
            if not shutil.which(tool):
                die("%s is missing: apt-get install debootstrap systemd-container" % tool)
        need_space(outdir, BUILD_SPACE, "building the rootfs")
        mirror, security = debian_mirrors()
        start = time.time()
        work = tempfile.mkdtemp(prefix="build-", dir=outdir)
        try:
            root = os.path.join(work, "root")
            run(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages),
                 SUITE, root, mirror])
            customise_rootfs(root, mirror, security)
            run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
                 "-C", root, "-cf", tarball + ".part", "."])
            os.rename(tarball + ".part", tarball)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            if os.path.exists(tarball + ".part"):
                os.remove(tarball + ".part")
        log("built %s in %.0fs" % (tarball, time.time() - start))
        return tarball


def rootfs_tree(tarball):
    """The tarball unpacked once, read-only lower layer of every overlay-rooted host."""
    tree = tarball[:-len(".tar")]
    with open(os.path.join(os.path.dirname(tarball), ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.isdir(tree) and os.path.getmtime(tree) >= os.path.getmtime(tarball):
            return tree
        shutil.rmtree(tree, ignore_errors=True)
        need_space(os.path.dirname(tarball), os.path.getsize(tarball) + HOST_SPACE_MARGIN,
                   "unpacking the rootfs")
        work = tempfile.mkdtemp(prefix="unpack-", dir=os.path.dirname(tarball))
        try:
            untar(tarball, work)
            os.chmod(work, 0o755)
            os.rename(work, tree)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return tree


def untar(tarball, into):
    run(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls",
         "-C", into, "-xf", tarball], quiet=True)


# ---------------------------------------------------------------------------- layout


def parse_hosts(spec):
    hosts = []
    for item in [i.strip() for i in spec.split(",") if i.strip()]:
        name, _, groups = item.partition(":")
        groups = [g for g in groups.split("+") if g] or ["workers"]
        if not HOST_NAME.match(name) or name == "net":
            die("host name %r: use lower-case letters, digits and '-' (at most 22), not 'net'"
                % name)
        for group in groups:
            if not re.match(r"^[a-z_][a-z0-9_]*$", group):
                die("host %s: group %r is not a valid Ansible group name" % (name, group))
        if name in [h["name"] for h in hosts]:
            die("host %r is listed twice" % name)
        hosts.append({"name": name, "groups": groups})
    if not hosts:
        die("no hosts given")
    return hosts


def plan(args):
    try:
        subnet = ipaddress.ip_network(args.subnet)
    except ValueError as exc:
        die("--subnet %r: %s" % (args.subnet, exc))
    if subnet.version != 4 or not subnet.is_private:
        die("--subnet %s: use a private IPv4 network" % subnet)
    if not PREFIX.match(args.prefix):
        die("--prefix %r: use lower-case letters, digits and '-' (at most 31)" % args.prefix)
    hosts = parse_hosts(args.hosts)
    if len(hosts) + FIRST_HOST_OFFSET >= subnet.num_addresses - 1:
        die("--subnet %s is too small for %d hosts" % (subnet, len(hosts)))
    gateway = subnet.network_address + 1
    for index, host in enumerate(hosts):
        host["address"] = str(subnet.network_address + FIRST_HOST_OFFSET + index)
        host["netns"] = host["machine"] = "%s-%s" % (args.prefix, host["name"])
        host["bridge_port"] = "port%d" % index
    return {"prefix": args.prefix, "subnet": str(subnet), "gateway": str(gateway),
            "root_mode": args.root, "bridge_netns": args.prefix + "-net", "hosts": hosts}


# ---------------------------------------------------------------------------- state


class State:
    def __init__(self, path):
        self.dir = os.path.abspath(path)
        self.file = os.path.join(self.dir, STATE_FILE)
        self.key = os.path.join(self.dir, "id_ed25519")
        self.inventory = os.path.join(self.dir, "inventory.yml")

    def host_dir(self, name):
        return os.path.join(self.dir, "hosts", name)

    def load(self):
        try:
            with open(self.file) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def save(self, data):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.file + ".part", "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.rename(self.file + ".part", self.file)

    def lock(self):
        os.makedirs(self.dir, exist_ok=True)
        handle = open(os.path.join(self.dir, ".lock"), "w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle


# ---------------------------------------------------------------------------- network


def netns_exists(name):
    return os.path.exists(os.path.join("/run/netns", name))


def ip(*args, netns=None):
    cmd = ["ip"] + (["-n", netns] if netns else []) + list(args)
    run(cmd, quiet=True)


def make_network(layout):
    bridge = layout["bridge_netns"]
    prefixlen = ipaddress.ip_network(layout["subnet"]).prefixlen
    ip("netns", "add", bridge)
    ip("link", "set", "lo", "up", netns=bridge)
    ip("link", "add", "br0", "type", "bridge", netns=bridge)
    ip("addr", "add", "%s/%d" % (layout["gateway"], prefixlen), "dev", "br0", netns=bridge)
    ip("link", "set", "br0", "up", netns=bridge)
    for host in layout["hosts"]:
        ns = host["netns"]
        ip("netns", "add", ns)
        ip("link", "set", "lo", "up", netns=ns)
        # Both ends are created straight inside the namespaces: no link ever appears
        # on the machine's own network.
        ip("link", "add", host["bridge_port"], "type", "veth", "peer", "name", "eth0",
           "netns", ns, netns=bridge)
        ip("link", "set", host["bridge_port"], "master", "br0", "up", netns=bridge)
        ip("addr", "add", "%s/%d" % (host["address"], prefixlen), "dev", "eth0", netns=ns)
        ip("link", "set", "eth0", "up", netns=ns)
        ip("route", "add", "default", "via", layout["gateway"], netns=ns)


def remove_network(layout):
    names = [h["netns"] for h in layout.get("hosts", [])] + [layout.get("bridge_netns")]
    for name in names:
        if name and netns_exists(name):
            run(["ip", "netns", "delete", name], quiet=True)


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


# ---------------------------------------------------------------------------- hosts


def kernel_builtin_modules():
    """Modules Kubernetes nodes modprobe that this kernel has built in (it may load none)."""
    release = os.uname().release
    found = []
    with open("/proc/filesystems") as f:
        if "overlay" in f.read().split():
            found.append("kernel/fs/overlayfs/overlay.ko")
    if os.path.isdir("/proc/sys/net/bridge"):
        found.append("kernel/net/bridge/br_netfilter.ko")
    for name, path in (("nf_conntrack", "kernel/net/netfilter/nf_conntrack.ko"),
                       ("ip_set", "kernel/net/netfilter/ipset/ip_set.ko"),
                       ("vxlan", "kernel/drivers/net/vxlan/vxlan.ko")):
        if os.path.isdir(os.path.join("/sys/module", name)):
            found.append(path)
    return release, found


def resolve_in(root, path):
    """path inside the tree at root with its symbolic links followed inside that tree
    (Debian's /lib is a link to usr/lib: an overlay's upper layer must not shadow it)."""
    parts, done = [p for p in path.split("/") if p], []
    for _ in range(256):
        if not parts:
            return "/".join(done)
        part = parts.pop(0)
        if part == "..":
            done = done[:-1]
        elif part != ".":
            here = os.path.join(root, *done, part)
            if os.path.islink(here):
                target = os.readlink(here)
                done = [] if target.startswith("/") else done
                parts = [p for p in target.split("/") if p] + parts
            else:
                done.append(part)
    die("too many symbolic links resolving %s in %s" % (path, root))


def host_file(files, base, path, text, mode=0o644):
    """Write path (as the host sees it) into files, the host's own layer; missing parent
    directories take the owner and mode they have in base, the shared tree."""
    path = resolve_in(base, path)
    made = files
    for part in os.path.dirname(path).split("/"):
        made = os.path.join(made, part)
        if not os.path.isdir(made):
            os.mkdir(made)
            like = os.path.join(base, os.path.relpath(made, files))
            if os.path.isdir(like):
                st = os.stat(like)
                os.chown(made, st.st_uid, st.st_gid)
                os.chmod(made, st.st_mode & 0o7777)
    write(os.path.join(files, path), text, mode)


def overlay_mount(state, host):
    hdir = state.host_dir(host["name"])
    return "mount -t overlay plinth-testhost -o %s %s" % (shlex.quote(
        "lowerdir=%s,upperdir=%s,workdir=%s" % (host["lower"], os.path.join(hdir, "upper"),
                                                os.path.join(hdir, "work"))),
        shlex.quote(os.path.join(hdir, "root")))


def prepare_host(state, layout, host, tarball, pubkey):
    hdir = state.host_dir(host["name"])
    root = os.path.join(hdir, "root")
    os.makedirs(root)
    os.makedirs(os.path.join(hdir, "containerd"))
    if layout["root_mode"] == "overlay":
        host["lower"] = rootfs_tree(tarball)
        files, base = os.path.join(hdir, "upper"), host["lower"]
        os.makedirs(files)
        os.makedirs(os.path.join(hdir, "work"))
    else:
        untar(tarball, root)
        files = base = root
    host_file(files, base, "/etc/hostname", host["name"] + "\n")
    host_file(files, base, "/etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
    names = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    names += ["%s %s" % (h["address"], h["name"]) for h in layout["hosts"]]
    host_file(files, base, "/etc/hosts", "\n".join(names) + "\n")
    # A name server CoreDNS can forward to (it refuses to start without one). Nothing
    # listens there, so lookups beyond /etc/hosts fail at once (port unreachable).
    host_file(files, base, "/etc/resolv.conf", "nameserver %s\n" % layout["gateway"])
    host_file(files, base, "/root/.ssh/authorized_keys", pubkey, 0o600)
    release, modules = kernel_builtin_modules()
    # The kernel loads no modules, but has what a node modprobes built in; listing them
    # as built in lets `modprobe overlay` succeed as it would on a stock kernel.
    host_file(files, base, "/lib/modules/%s/modules.builtin" % release,
              "".join(m + "\n" for m in modules))
    host["covered_sysctls"] = []
    for key, value in cover_sysctls():
        host_file(files, base, "%s/%s" % (COVER_DIR, key.replace("/", ".")), value + "\n")
        host["covered_sysctls"].append(key)
    # SSH host keys and the module index are made by the host's own tools.
    script = "ssh-keygen -q -A; depmod %s 2>/dev/null" % shlex.quote(release)
    mount = overlay_mount(state, host) + " && " if layout["root_mode"] == "overlay" else ""
    run(["unshare", "--mount", "--propagation", "private", "sh", "-ec",
         "%sexec chroot %s sh -ec %s" % (mount, shlex.quote(root), shlex.quote(script))],
        quiet=True, stdout=subprocess.DEVNULL)


def cover_sysctls():
    """The kubelet values that differ from the machine's: [(key, value)]."""
    covered = []
    for key, wanted in sorted(KUBELET_SYSCTLS.items()):
        try:
            with open(os.path.join("/proc/sys", key)) as f:
                if f.read().strip() != wanted:
                    covered.append((key, wanted))
        except OSError:
            pass
    return covered


def nspawn_command(state, host):
    hdir = state.host_dir(host["name"])
    return [
        "systemd-nspawn", "--boot", "--quiet",
        "--machine=" + host["machine"], "--hostname=" + host["name"],
        "--directory=" + os.path.join(hdir, "root"),
        # --private-network with a namespace path: the host joins its own namespace and
        # may write /proc/sys/net (ip_forward, bridge-nf-call-iptables) there.
        "--private-network", "--network-namespace-path=/run/netns/" + host["netns"],
        # Nothing to register with or allocate a scope from (this machine's PID 1 need not
        # be systemd): the host runs in the cgroups this tool made for it.
        "--register=no", "--keep-unit",
        "--link-journal=no", "--resolv-conf=off", "--console=read-only",
        # containerd and kubelet need every capability but one: a host must never
        # set the machine's clock (chronyd's unit then skips itself).
        "--capability=all", "--drop-capability=CAP_SYS_TIME",
        "--bind=%s:/sys/fs/cgroup" % os.path.join(hdir, "cgroup"), "--bind=/dev/kmsg",
        # containerd's overlayfs snapshotter needs a plain file system under it.
        "--bind=%s:/var/lib/containerd" % os.path.join(hdir, "containerd"),
    ] + [
        # nspawn binds over /proc from inside the host: the source is a path in the host.
        "--bind-ro=%s/%s:/proc/sys/%s" % (COVER_DIR, key.replace("/", "."), key)
        for key in host.get("covered_sysctls", [])
    ]


def boot_script(state, host):
    """Shell run in a private mount namespace: lay out the host's /sys/fs/cgroup, then
    exec nspawn. The mounts vanish with that namespace when the host stops."""
    tree = os.path.join(state.host_dir(host["name"]), "cgroup")
    lines = ["set -e", "mount -t tmpfs -o mode=755,size=64k plinth-cgroup %s" % shlex.quote(tree)]
    if host.get("lower"):
        lines.append(overlay_mount(state, host))
    for name, (_, seen) in sorted(host["cgroups"].items()):
        target = os.path.join(tree, name)
        lines += ["mkdir %s" % shlex.quote(target),
                  "mount --bind %s %s" % (shlex.quote(seen), shlex.quote(target))]
    lines.append("exec " + " ".join(shlex.quote(a) for a in nspawn_command(state, host)))
    return "\n".join(lines)


def boot_host(state, host):
    hdir = state.host_dir(host["name"])
    os.makedirs(os.path.join(hdir, "cgroup"), exist_ok=True)
    host["root"] = os.path.join(hdir, "root")
    host["cgroups"] = make_cgroups(host["machine"])
    console = open(os.path.join(hdir, "console.log"), "ab")
    env = dict(os.environ, SYSTEMD_SECCOMP="0")
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", boot_script(state, host)],
        stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=env,
        start_new_session=True, close_fds=True,
        preexec_fn=enter_cgroups([made for made, _ in host["cgroups"].values()]))
    console.close()
    host["pid"] = proc.pid  # unshare and sh exec: this becomes nspawn's PID
    deadline = time.time() + 10
    while not is_our_nspawn(proc.pid, host):
        if proc.poll() is not None or time.time() > deadline:
            die("host %s: systemd-nspawn did not start; see %s" % (
                host["name"], os.path.join(hdir, "console.log")))
        time.sleep(0.05)


def process_table():
    table = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/status" % pid) as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        table[int(pid)] = {"ppid": int(status["PPid"]), "nspid": status.get("NSpid", "").split()}
    return table


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "\nState:\tZ" not in f.read()
    except (OSError, TypeError):
        return False


def is_our_nspawn(pid, host):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, TypeError):
        return False
    return (b"systemd-nspawn" in argv[0]
            and ("--directory=" + host.get("root", "")).encode() in argv)


def leader(host):
    """PID (on the machine) of the host's init: the descendant of nspawn that is PID 1 in
    its own PID namespace, the outermost one (a pod's pause process is PID 1 of a PID
    namespace nested inside the host's)."""
    pid = host.get("pid")
    if not is_our_nspawn(pid, host):
        return None
    table = process_table()
    found = []
    for candidate, info in table.items():
        if len(info["nspid"]) < 2 or info["nspid"][-1] != "1":
            continue
        walk = candidate
        while walk > 1 and walk in table:
            walk = table[walk]["ppid"]
            if walk == pid:
                found.append((len(info["nspid"]), candidate))
                break
    return min(found)[1] if found else None


def in_node(host, cmd, timeout=30):
    pid = leader(host)
    if not pid:
        raise RuntimeError("host %s is not running" % host["name"])
    return subprocess.run(["nsenter", "--target", str(pid), "--all", "--"] + cmd,
                          capture_output=True, text=True, timeout=timeout)


def system_state(host):
    try:
        return in_node(host, ["systemctl", "is-system-running"], timeout=10).stdout.strip()
    except (RuntimeError, subprocess.TimeoutExpired):
        return "down"


def proxy_command(host):
    netns = ["ip", "netns", "exec", host["netns"]]
    if shutil.which("nc"):
        return netns + ["nc", "%h", "%p"]
    if shutil.which("socat"):
        return netns + ["socat", "-", "TCP:%h:%p"]
    return netns + launch.module_command("testbed.testhosts", "relay", "%h", "%p")


def ssh_options(state, host):
    return ["-o", "ProxyCommand=" + " ".join(proxy_command(host)),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR"]


def ssh_command(state, host, cmd):
    return (["ssh", "-i", state.key, "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
            + ssh_options(state, host) + ["root@" + host["address"]] + cmd)


def wait_ready(state, host, deadline):
    """Until the host's systemd has finished booting and root gets in over SSH."""
    last = None
    while time.time() < deadline:
        if not is_our_nspawn(host["pid"], host):
            die("host %s: systemd-nspawn exited; see %s" % (
                host["name"], os.path.join(state.host_dir(host["name"]), "console.log")))
        last = system_state(host)
        if last in ("running", "degraded"):
            cgroups = in_node(host, ["cat", "/proc/1/cgroup"]).stdout
            if "/.." in cgroups:  # the host would manage cgroups outside its own
                die("host %s: its init is outside its cgroups:\n%s" % (host["name"], cgroups))
            probe = subprocess.run(ssh_command(state, host, ["true"]), capture_output=True,
                                   text=True, timeout=30)
            if probe.returncode == 0:
                return last
            last = "%s, ssh: %s" % (last, probe.stderr.strip()[-200:])
        time.sleep(0.5)
    die("host %s not ready in time (last state: %s)" % (host["name"], last))


def stop_hosts(hosts, timeout=60):
    """Power every host off at once (nspawn answers SIGTERM by asking the host's systemd
    to power off); kill those still running after timeout seconds."""
    running = [(h, leader(h)) for h in hosts if is_our_nspawn(h.get("pid"), h)]
    for host, _ in running:
        os.kill(host["pid"], signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and any(alive(h["pid"]) for h, _ in running):
        time.sleep(0.2)
    for host, init in running:
        if alive(host["pid"]):
            log("host %s did not power off in %ds: killing it" % (host["name"], timeout))
            if init and alive(init):
                os.kill(init, signal.SIGKILL)  # ends the host's whole PID namespace
            os.kill(host["pid"], signal.SIGKILL)
    while any(alive(h["pid"]) for h, _ in running):
        time.sleep(0.1)


def kill_leftovers(state, layout):
    """Processes still rooted in the run's host directories (there should be none), and
    any in its network namespaces: SSH ProxyCommands (nc) whose host has gone would keep
    an SSH control master alive that later connections to the same address reuse."""
    hosts_dir = os.path.join(state.dir, "hosts") + "/"
    namespaces = set()
    for name in [h["netns"] for h in layout.get("hosts", [])] + [layout.get("bridge_netns")]:
        try:
            namespaces.add(os.stat(os.path.join("/run/netns", name or "-")).st_ino)
        except OSError:
            pass
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            root = os.readlink("/proc/%s/root" % pid) + "/"
            netns = os.stat("/proc/%s/ns/net" % pid).st_ino
        except OSError:
            continue
        if root.startswith(hosts_dir) or netns in namespaces:
            try:
                with open("/proc/%s/comm" % pid) as f:
                    log("ending leftover process %s (%s)" % (pid, f.read().strip()))
            except OSError:
                pass
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def unmount_leftovers(state):
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(state.dir + "/")), reverse=True):
        run(["umount", "--lazy", point], check=False)


# ---------------------------------------------------------------------------- inventory


def inventory_text(state, layout):
    def q(value):
        return json.dumps(value)

    groups = {g: [] for g in KNOWN_GROUPS}
    for host in layout["hosts"]:
        for group in host["groups"]:
            groups.setdefault(group, []).append(host)
    lines = [
        "---",
        "# Generated by testbed/testhosts.py: test hosts booted with systemd-nspawn, one",
        "# network namespace each. Bring them down with:",
        "#   testbed/testhosts.py --state-dir %s down" % state.dir,
        "all:",
        "  vars:",
        "    ansible_user: root",
        "    ansible_ssh_private_key_file: " + q(state.key),
        "    ansible_python_interpreter: /usr/bin/python3",
        "  children:",
        "    k8s_cluster:",
        "      children:",
    ]
    for group, members in groups.items():
        if not members:
            lines.append("        %s: {}" % group)
            continue
        lines += ["        %s:" % group, "          hosts:"]
        for host in members:
            args = " ".join(shlex.quote(o) for o in ssh_options(state, host))
            lines += ["            %s:" % host["name"],
                      "              ansible_host: " + host["address"],
                      "              ansible_ssh_common_args: " + q(args)]
    return "\n".join(lines) + "\n"


def write_inventory(state, layout, path=None):
    path = os.path.abspath(path or state.inventory)
    write(path, inventory_text(state, layout))
    return path


# ---------------------------------------------------------------------------- commands


def ensure_tools():
    if os.geteuid() != 0:
        die("must run as root (network namespaces, systemd-nspawn)")
    missing = [t for t in ("systemd-nspawn", "debootstrap", "ip", "nsenter", "unshare", "ssh",
                           "ssh-keygen") if not shutil.which(t)]
    if missing:
        die("missing %s: apt-get install debootstrap systemd-container iproute2 "
            "openssh-client util-linux" % ", ".join(missing))
    if [point for point, _, _ in cgroup_hierarchies()] == ["/sys/fs/cgroup"]:
        die("this machine has only the cgroup v2 hierarchy; the test hosts are laid out for "
            "cgroup v1 or hybrid machines")


def same_layout(a, b):
    keys = ("prefix", "subnet", "root_mode")
    return (all(a.get(k) == b.get(k) for k in keys)
            and [(h["name"], h["groups"]) for h in a["hosts"]]
            == [(h["name"], h["groups"]) for h in b["hosts"]])


def cmd_up(args, state):
    ensure_tools()
    wanted = plan(args)
    try:
        with state.lock():
            up(args, state, wanted)
    finally:
        if os.listdir(state.dir) == [".lock"]:  # failed before making anything
            shutil.rmtree(state.dir)


def up(args, state, wanted):
    current = state.load()
    if current and same_layout(current, wanted) and all(
            system_state(h) in ("running", "degraded") for h in current["hosts"]):
        log("already up")
        print(write_inventory(state, current))
        return
    if current:
        log("tearing down the previous run first")
        teardown(state, current)
    for name in [wanted["bridge_netns"]] + [h["netns"] for h in wanted["hosts"]]:
        if netns_exists(name):
            die("network namespace %s exists but is not this run's (another state dir "
                "with prefix %r?)" % (name, wanted["prefix"]))
    tarball = build_rootfs(args.rebuild)
    if wanted["root_mode"] == "copy":
        need_space(state.dir, os.path.getsize(tarball) * len(wanted["hosts"])
                   + HOST_SPACE_MARGIN, "%d host copies of the rootfs" % len(wanted["hosts"]))
    start = time.time()
    state.save(wanted)  # recorded before anything exists, so `down` can always clean up
    if not os.path.exists(state.key):
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "plinth-testhosts",
             "-f", state.key], quiet=True)
    with open(state.key + ".pub") as f:
        pubkey = f.read()
    make_network(wanted)
    for host in wanted["hosts"]:
        prepare_host(state, wanted, host, tarball, pubkey)
        host["root"] = os.path.join(state.host_dir(host["name"]), "root")
    state.save(wanted)
    for host in wanted["hosts"]:
        boot_host(state, host)
        state.save(wanted)
    deadline = time.time() + args.timeout
    for host in wanted["hosts"]:
        log("host %s (%s): %s" % (host["name"], host["address"],
                                  wait_ready(state, host, deadline)))
    log("%d hosts up in %.1fs" % (len(wanted["hosts"]), time.time() - start))
    print(write_inventory(state, wanted))


def teardown(state, layout):
    stop_hosts(layout.get("hosts", []))
    for host in layout.get("hosts", []):
        cgroups = host.get("cgroups") or {}
        remove_cgroups([made for made, _ in cgroups.values()] if isinstance(cgroups, dict)
                       else cgroups)
        # nspawn leaves this behind when /run is not a tmpfs.
        shutil.rmtree(os.path.join(NSPAWN_RUN, "propagate", host.get("machine", "-")),
                      ignore_errors=True)
    for leftover in ("propagate", "locks", ""):
        try:
            os.rmdir(os.path.join(NSPAWN_RUN, leftover))
        except OSError:
            pass
    kill_leftovers(state, layout)
    unmount_leftovers(state)
    remove_network(layout)
    shutil.rmtree(os.path.join(state.dir, "hosts"), ignore_errors=True)
    for name in (STATE_FILE, "inventory.yml"):
        if os.path.exists(os.path.join(state.dir, name)):
            os.remove(os.path.join(state.dir, name))


def cmd_down(args, state):
    if os.geteuid() != 0:
        die("must run as root")
    if not os.path.isdir(state.dir):
        log("nothing to do")
        return
    start = time.time()
    with state.lock():
        layout = state.load() or {"hosts": []}
        teardown(state, layout)
        for name in ("id_ed25519", "id_ed25519.pub"):
            if os.path.exists(os.path.join(state.dir, name)):
                os.remove(os.path.join(state.dir, name))
    os.remove(os.path.join(state.dir, ".lock"))
    try:
        os.rmdir(state.dir)
    except OSError:
        log("left %s in place: it holds files this tool did not make" % state.dir)
    log("down in %.1fs" % (time.time() - start))


def loaded(state):
    layout = state.load()
    if not layout:
        die("no test hosts in %s (run `up` first)" % state.dir)
    return layout


def cmd_status(args, state):
    layout = loaded(state)
    print("%-12s %-15s %-24s %-8s %s" % ("HOST", "ADDRESS", "GROUPS", "PID", "SYSTEM"))
    for host in layout["hosts"]:
        running = is_our_nspawn(host.get("pid"), host)
        print("%-12s %-15s %-24s %-8s %s" % (
            host["name"], host["address"], ",".join(host["groups"]),
            host.get("pid") if running else "-", system_state(host) if running else "down"))
    print("root: %s; network namespaces: %s-*; inventory: %s" % (
        layout.get("root_mode", "copy"), layout["prefix"], state.inventory))


def cmd_inventory(args, state):
    print(write_inventory(state, loaded(state), args.output))


def cmd_exec(args, state):
    layout = loaded(state)
    host = next((h for h in layout["hosts"] if h["name"] == args.name), None)
    if host is None:
        die("no host %r" % args.name)
    pid = leader(host)
    if not pid:
        die("host %s is not running" % args.name)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    os.execvp("nsenter", ["nsenter", "--target", str(pid), "--all", "--"]
              + (command or ["/bin/bash", "-l"]))


def cmd_ssh(args, state):
    layout = loaded(state)
    host = next((h for h in layout["hosts"] if h["name"] == args.name), None)
    if host is None:
        die("no host %r" % args.name)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    cmd = ssh_command(state, host, command)
    os.execvp(cmd[0], cmd)


def cmd_build(args, state):
    ensure_tools()
    print(build_rootfs(args.rebuild))


def cmd_relay(args, state):
    """ProxyCommand fallback when neither nc nor socat is installed: stdin/stdout <-> TCP."""
    import selectors
    conn = socket.create_connection((args.host, int(args.port)))
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.buffer, selectors.EVENT_READ)
    sel.register(conn, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is conn:
                data = conn.recv(65536)
                if not data:
                    return
                os.write(1, data)
            else:
                data = os.read(0, 65536)
                if not data:
                    conn.shutdown(socket.SHUT_WR)
                    sel.unregister(sys.stdin.buffer)
                else:
                    conn.sendall(data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", default=os.environ.get("PLINTH_TESTHOSTS_STATE"),
                        help="where a run keeps everything (default: "
                             "${PLINTH_CACHE:-~/.cache/plinth}/testhosts/<prefix>)")
    parser.add_argument("--prefix", default="plinth",
                        help="network namespace prefix (default: plinth)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="build/reuse the rootfs, create and boot the hosts")
    up.add_argument("--hosts", default=DEFAULT_HOSTS,
                    help="name:group[+group],... (default: %(default)s)")
    up.add_argument("--subnet", default=DEFAULT_SUBNET,
                    help="private subnet inside the namespaces (default: %(default)s)")
    up.add_argument("--timeout", type=int, default=180, help="seconds to wait for boot")
    up.add_argument("--rebuild", action="store_true", help="rebuild the cached rootfs")
    up.add_argument("--root", choices=("copy", "overlay"), default="copy",
                    help="each host's root: a full copy of the rootfs, or an overlay on one "
                         "shared unpacked rootfs (far less disk) (default: %(default)s)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop and remove everything the run made").set_defaults(
        func=cmd_down)
    sub.add_parser("status", help="show the hosts and their systemd state").set_defaults(
        func=cmd_status)
    inv = sub.add_parser("inventory", help="write the Ansible inventory, print its path")
    inv.add_argument("-o", "--output", help="path (default: <state-dir>/inventory.yml)")
    inv.set_defaults(func=cmd_inventory)
    for name, func, text in (("exec", cmd_exec, "run a command inside a host (nsenter)"),
                             ("ssh", cmd_ssh, "ssh into a host as Ansible does")):
        p = sub.add_parser(name, help=text)
        p.add_argument("name")
        p.add_argument("command", nargs=argparse.REMAINDER)
        p.set_defaults(func=func)
    build = sub.add_parser("build", help="build (or find) the cached rootfs, print its path")
    build.add_argument("--rebuild", action="store_true")
    build.set_defaults(func=cmd_build)
    relay = sub.add_parser("relay", help="ProxyCommand fallback: stdin/stdout to HOST:PORT")
    relay.add_argument("host")
    relay.add_argument("port")
    relay.set_defaults(func=cmd_relay)
    args = parser.parse_args(argv)
    state = State(args.state_dir or os.path.join(cache.root(), "testhosts", args.prefix))
    args.func(args, state)


if __name__ == "__main__":
    main()

"""Each host's files, its systemd-nspawn boot and stop, and the ways into it (nsenter, SSH).
"""

import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid

from airgap import launch
from testbed.testhosts.cgroups import enter_cgroups, make_cgroups
from testbed.testhosts.common import die, log, run, write
from testbed.testhosts.rootfs import rootfs_tree, untar

# Host-wide kernel settings kubelet sets to these values at start (and fails when it
# cannot). /proc/sys is read-only in a host and the machine's values must not change,
# so a host sees these values in files bound over the entries (covered_sysctls).
KUBELET_SYSCTLS = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
                   "kernel/panic_on_oops": "1", "kernel/keys/root_maxkeys": "1000000",
                   "kernel/keys/root_maxbytes": "25000000"}
COVER_DIR = "/var/lib/plinth-testhost/sysctl"
NSPAWN_RUN = "/run/systemd/nspawn"


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

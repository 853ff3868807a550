"""The hosts' root filesystem: a debootstrap of Debian 12 with the packages the scenarios
need, customised in a chroot and cached as a tarball keyed by its recipe.
"""

import fcntl
import hashlib
import os
import re
import shlex
import shutil
import tempfile
import time

from airgap import cache
from testbed.testhosts.common import die, log, run, write

PACKAGES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "packages.txt")
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Bump when the rootfs recipe below changes, so cached tarballs are rebuilt.
RECIPE = "4"
SLIM_EXCLUDE = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
                "/usr/share/locale/*", "/usr/share/lintian/*")
BUILD_SPACE = 1 << 30  # debootstrap's downloads, the tree and the tarball
HOST_SPACE_MARGIN = 256 << 20


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

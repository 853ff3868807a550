#!/usr/bin/env python3
"""Build Kubernetes release binaries (and crictl, and etcd) from their Go modules.

k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/client-go, ...)
with local paths that are not part of its module archive, so it cannot be built
with `go install ...@version`. This script writes a small main module of its
own that requires k8s.io/kubernetes and replaces every staging module with the
published v0.<minor>.<patch> of the same release, then runs `go build` for
each binary with the version stamped the way the Kubernetes release does.

Binaries land in <cache>/kubernetes/v<version>/bin/, built once: a binary that
is already there is skipped, and each one is built to a temporary name and
renamed into place, so an interrupted build never leaves a half-written file.
The cache defaults to ${PLINTH_CACHE:-~/.cache/plinth}; it never lives in the
repository. A cold kube-apiserver build takes about ten minutes on two cores.

etcd is a binary of its own release train: `--binaries etcd` builds the etcd
that kubeadm of the requested Kubernetes release runs (its DefaultEtcdVersion,
or --etcd-version) from go.etcd.io/etcd/server/v3, whose go.mod replaces the
other etcd modules with local paths just like Kubernetes' staging modules. It
lands in <cache>/etcd/v<etcd version>/bin/etcd.

The CNI plugins are another: `--binaries cni-plugins` builds bridge, host-local,
loopback and portmap (what the cni_bridge role installs) from
github.com/containernetworking/plugins at --cni-plugins-version (pinned,
v1.9.1 by default) into <cache>/cni-plugins/v<version>/bin/.

kwok is a third: `--binaries kwok` builds sigs.k8s.io/kwok/cmd/kwok (the pinned
KWOK_VERSION, or --kwok-version) into <cache>/kwok/v<version>/bin/kwok, and puts
the release's default node and pod Stages (what kwokctl hands its kwok) beside it
in .../stages/: a kwok without Stage CRDs acts only on the Stages in its --config.

Needs only Python 3 and the go tool, with a reachable Go module proxy (or a
module cache that already holds the modules).
"""

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from airgap import cache

KUBERNETES_MODULE = "k8s.io/kubernetes"
CRI_TOOLS_MODULE = "sigs.k8s.io/cri-tools"
CRICTL_PACKAGE = CRI_TOOLS_MODULE + "/cmd/crictl"

DEFAULT_BINARIES = ("kubeadm", "kubelet", "kubectl")
KUBERNETES_BINARIES = DEFAULT_BINARIES + (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
)
# The release build's tags (hack/lib/golang.sh) for non-debug binaries.
BUILD_TAGS = "selinux,notest,grpcnotrace"
# Both packages carry the version variables; the release stamps both.
VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
WORK_MODULE = "plinth.build/kubernetes"

# The etcd server module holds the etcd main package at its root.
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
ETCD_BINARY = "etcd"
ETCD_SHA_VARIABLE = "go.etcd.io/etcd/api/v3/version.GitSHA"
# kubeadm's constants name the etcd image tag it deploys, e.g. "3.6.8-0".
KUBEADM_ETCD_RE = re.compile(r'DefaultEtcdVersion\s*=\s*"(\d+\.\d+\.\d+)-\d+"')
KUBEADM_CONSTANTS = os.path.join("cmd", "kubeadm", "app", "constants", "constants.go")

# The CNI plugins of the cni_bridge role's pod network, one module release for all of them.
CNI_PLUGINS_TARGET = "cni-plugins"
CNI_PLUGINS_MODULE = "github.com/containernetworking/plugins"
CNI_PLUGINS_VERSION = "v1.9.1"
CNI_PLUGIN_PACKAGES = {
    "bridge": "plugins/main/bridge",
    "host-local": "plugins/ipam/host-local",
    "loopback": "plugins/main/loopback",
    "portmap": "plugins/meta/portmap",
}
CNI_VERSION_VARIABLE = CNI_PLUGINS_MODULE + "/pkg/utils/buildversion.BuildVersion"
# kwok plays kubelet for Nodes without machines: it moves their pods through the
# Stages it is given (Running and Ready, then gone once deleted) and keeps the Nodes Ready.
KWOK_TARGET = "kwok"
KWOK_MODULE = "sigs.k8s.io/kwok"
KWOK_PACKAGE = KWOK_MODULE + "/cmd/kwok"
# v0.8.0 is the newest release on the proxy and builds with Go 1.26 (its go.mod: go 1.26.0).
KWOK_VERSION = "v0.8.0"
KWOK_VERSION_VARIABLE = KWOK_MODULE + "/pkg/consts.Version"
# kwokctl's defaults for a cluster with node leases: the Stage files of the module it embeds.
KWOK_STAGES = (
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
)
# Targets of their own release train, built beside the Kubernetes binaries when named.
OTHER_TARGETS = (ETCD_BINARY, CNI_PLUGINS_TARGET, KWOK_TARGET)


class BuildError(Exception):
    pass


def log(message):
    print(message, flush=True)


def parse_version(text):
    match = VERSION_RE.match(text.strip())
    if not match:
        raise BuildError("--version %r: expected MAJOR.MINOR.PATCH, e.g. 1.36.3" % text)
    return tuple(int(part) for part in match.groups())


def run_go(args, cwd=None, env=None, capture=True):
    command = ["go"] + args
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        text=True,
    )
    return result


def module_info(module, version):
    """Download module@version (a version or a query such as v1.36); None if absent."""
    result = run_go(["mod", "download", "-json", "%s@%s" % (module, version)])
    try:
        info = json.loads(result.stdout)
    except ValueError:
        return None
    if result.returncode != 0 or info.get("Error"):
        return None
    return info


def resolve_kubernetes(version):
    """The k8s.io/kubernetes release to build: the one asked for, else the newest patch of its minor."""
    major, minor, patch = version
    wanted = "v%d.%d.%d" % version
    info = module_info(KUBERNETES_MODULE, wanted)
    if info:
        return info, None
    info = module_info(KUBERNETES_MODULE, "v%d.%d" % (major, minor))
    if not info:
        raise BuildError(
            "%s: neither %s nor any v%d.%d.x is on the Go module proxy"
            % (KUBERNETES_MODULE, wanted, major, minor)
        )
    return info, "%s %s is not on the Go module proxy; using %s, the newest v%d.%d.x" % (
        KUBERNETES_MODULE, wanted, info["Version"], major, minor)


def resolve_cri_tools(minor, pinned):
    """cri-tools of the same minor when published, else the newest release."""
    if pinned:
        info = module_info(CRI_TOOLS_MODULE, pinned if pinned.startswith("v") else "v" + pinned)
        if not info:
            raise BuildError("%s %s is not on the Go module proxy" % (CRI_TOOLS_MODULE, pinned))
        return info, None
    # A minor query needs the proxy's version list, which may omit releases it
    # still serves; the minor's first release is asked for by name as well.
    for query in ("v1.%d" % minor, "v1.%d.0" % minor):
        info = module_info(CRI_TOOLS_MODULE, query)
        if info:
            return info, None
    info = module_info(CRI_TOOLS_MODULE, "latest")
    if not info:
        raise BuildError("%s: no release on the Go module proxy" % CRI_TOOLS_MODULE)
    return info, "%s has no v1.%d.x on the Go module proxy; using %s, the newest" % (
        CRI_TOOLS_MODULE, minor, info["Version"])


def read_go_mod(path):
    """The parts of a go.mod this build needs: go/godebug lines, requires, replaces."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    directives = {"go": None, "godebug": [], "require": {}, "replace": []}
    block = None
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if block:
            if line == ")":
                block = None
                continue
            add_directive(directives, block, line)
            continue
        keyword, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest == "(":
            block = keyword
        elif keyword in ("go", "godebug", "require", "replace"):
            add_directive(directives, keyword, rest)
    return directives


def add_directive(directives, keyword, body):
    if keyword == "go":
        directives["go"] = body
    elif keyword == "godebug":
        directives["godebug"].append(body)
    elif keyword == "require":
        parts = body.split()
        directives["require"][parts[0]] = parts[1]
    elif keyword == "replace":
        old, _, new = body.partition("=>")
        directives["replace"].append((old.strip(), new.strip()))


def staging_replacements(go_mod, release, stub_root):
    """Map each local-path replace of a required module to its published release.

    A staging module that is required but not published at this release gets an
    empty local stub: harmless when no binary imports it, a clear build error
    otherwise.
    """
    replaces, stubs = [], []
    for old, new in go_mod["replace"]:
        if not new.startswith("."):
            replaces.append("%s => %s" % (old, new))
            continue
        module = old.split()[0]
        if module not in go_mod["require"]:
            continue
        if module_info(module, release):
            replaces.append("%s => %s %s" % (module, module, release))
            continue
        stub = os.path.join(stub_root, module)
        os.makedirs(stub, exist_ok=True)
        with open(os.path.join(stub, "go.mod"), "w", encoding="utf-8") as handle:
            handle.write("module %s\n" % module)
        replaces.append("%s => %s" % (module, stub))
        stubs.append(module)
    return replaces, stubs


def module_replacements(go_mod):
    """A plain module's own replaces, which a requiring module must repeat."""
    local = [old for old, new in go_mod["replace"] if new.startswith(".")]
    if local:
        raise BuildError("replaced by local paths, cannot be built as a dependency: %s"
                         % ", ".join(local))
    return ["%s => %s" % pair for pair in go_mod["replace"]], []


def write_work_module(work_dir, module, version, go_mod, replaces):
    lines = ["module %s" % WORK_MODULE, ""]
    if go_mod["go"]:
        lines += ["go %s" % go_mod["go"], ""]
    for setting in go_mod["godebug"]:
        lines.append("godebug %s" % setting)
    if go_mod["godebug"]:
        lines.append("")
    lines += ["require %s %s" % (module, version), ""]
    if replaces:
        lines.append("replace (")
        lines += ["\t%s" % line for line in replaces]
        lines.append(")")
    content = "\n".join(lines) + "\n"
    os.makedirs(work_dir, exist_ok=True)
    path = os.path.join(work_dir, "go.mod")
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(content)
    os.replace(path + ".tmp", path)


def prepare_work_module(work_dir, info, packages, replaces_for):
    """A main module requiring info's module, with its requirements resolved for packages."""
    go_mod = read_go_mod(info["GoMod"])
    replaces, stubs = replaces_for(go_mod)
    write_work_module(work_dir, info["Path"], info["Version"], go_mod, replaces)
    result = run_go(["get"] + ["%s@%s" % (pkg, info["Version"]) for pkg in packages], cwd=work_dir)
    if result.returncode != 0:
        raise BuildError("go get in %s failed:\n%s" % (work_dir, result.stderr))
    return stubs


def kubernetes_ldflags(info, version):
    major, minor, _ = version
    values = {
        "gitVersion": info["Version"],
        "gitMajor": str(major),
        "gitMinor": str(minor),
        # Built from the module archive, not a git checkout: Kubernetes calls
        # such a tree "archive". The proxy names the commit only sometimes;
        # an empty one beats the unexpanded "$Format:%H$" placeholder.
        "gitCommit": module_origin(info).get("Hash", ""),
        "gitTreeState": "archive",
        # The release's publication time keeps rebuilds byte-identical.
        "buildDate": module_time(info),
    }
    flags = ["-s", "-w"]
    for package in VERSION_PACKAGES:
        for key, value in values.items():
            flags.append("-X '%s.%s=%s'" % (package, key, value))
    return " ".join(flags)


def proxy_info(info):
    """The proxy's .info record (Version, Time, and Origin when the proxy keeps it)."""
    try:
        with open(info["Info"], encoding="utf-8") as handle:
            return json.load(handle)
    except (KeyError, OSError, ValueError):
        return {}


def module_time(info):
    published = proxy_info(info).get("Time") or "1970-01-01T00:00:00Z"
    return re.sub(r"\.\d+Z$", "Z", published)


def module_origin(info):
    return proxy_info(info).get("Origin") or {}


def go_build(work_dir, package, target, ldflags, tags, arch, extra=()):
    """A static ``go build`` of ``package`` to ``target``, renamed into place when done."""
    env = dict(os.environ, CGO_ENABLED="0", GOOS="linux", GOARCH=arch)
    directory = os.path.dirname(target)
    handle, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(target), dir=directory)
    os.close(handle)
    args = ["build", "-trimpath"] + list(extra) + ["-ldflags", ldflags, "-o", temp]
    if tags:
        args += ["-tags", tags]
    started = time.monotonic()
    try:
        result = run_go(args + [package], cwd=work_dir, env=env, capture=False)
        if result.returncode != 0:
            raise BuildError("go build %s failed (exit %d)" % (package, result.returncode))
        os.chmod(temp, 0o755)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return time.monotonic() - started


@contextlib.contextmanager
def locked(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def remove_partial_builds(bin_dir):
    """Temporary outputs of a build that was killed; only called under the lock."""
    for name in os.listdir(bin_dir):
        if name.startswith("."):
            os.unlink(os.path.join(bin_dir, name))


def load_build_info(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"binaries": {}}


def save_build_info(path, data):
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".tmp", path)


def go_version():
    return run_go(["env", "GOVERSION"]).stdout.strip()


def build(args):
    version = parse_version(args.version)
    binaries = [name for name in args.binaries if name not in OTHER_TARGETS]
    unknown = sorted(set(binaries) - set(KUBERNETES_BINARIES))
    if unknown:
        raise BuildError("--binaries: unknown %s; supported: %s"
                         % (", ".join(unknown), ", ".join(KUBERNETES_BINARIES + OTHER_TARGETS)))
    if shutil.which("go") is None:
        raise BuildError("the go tool is not on PATH")

    kubernetes, note = resolve_kubernetes(version)
    if note:
        log("NOTE: " + note)
    version = parse_version(kubernetes["Version"])
    release_dir = os.path.join(args.cache, "kubernetes", kubernetes["Version"])
    bin_dir = os.path.join(release_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    info_path = os.path.join(release_dir, "build-info.json")

    with locked(os.path.join(release_dir, ".lock")):
        remove_partial_builds(bin_dir)
        build_info = load_build_info(info_path)
        build_info["kubernetes_version"] = kubernetes["Version"]
        timings = []
        wanted = not_built(bin_dir, binaries, args.force)
        if wanted:
            timings += build_kubernetes(kubernetes, version, wanted, release_dir, bin_dir,
                                        args.arch, build_info)
            save_build_info(info_path, build_info)
        if not args.no_crictl:
            target = os.path.join(bin_dir, "crictl")
            if os.path.exists(target) and not args.force:
                log("%-24s already built, skipped" % "crictl")
            else:
                timings += build_crictl(version, args.crictl_version, release_dir, target,
                                        args.arch, build_info)
                save_build_info(info_path, build_info)

    report_timings(timings, bin_dir)
    log("binaries in %s" % bin_dir)
    if ETCD_BINARY in args.binaries:
        etcd_bin_dir, etcd_timings = build_etcd_release(args, kubernetes)
        report_timings(etcd_timings, etcd_bin_dir)
        log("etcd in %s" % etcd_bin_dir)
    if CNI_PLUGINS_TARGET in args.binaries:
        cni_bin_dir, cni_timings = build_cni_plugins_release(args)
        report_timings(cni_timings, cni_bin_dir)
        log("CNI plugins in %s" % cni_bin_dir)
    if KWOK_TARGET in args.binaries:
        kwok_bin_dir, kwok_timings = build_kwok_release(args)
        report_timings(kwok_timings, kwok_bin_dir)
        log("kwok in %s" % kwok_bin_dir)


def report_timings(timings, bin_dir):
    for name, seconds in timings:
        log("built %-24s %7.1f s  %6.1f MiB" % (
            name, seconds, os.path.getsize(os.path.join(bin_dir, name)) / 2**20))
    if timings:
        log("total %-24s %7.1f s" % ("", sum(seconds for _, seconds in timings)))


def build_kubernetes(info, version, binaries, release_dir, bin_dir, arch, build_info):
    release = "v0.%d.%d" % (version[1], version[2])
    work_dir = os.path.join(release_dir, "work", "kubernetes")
    packages = ["%s/cmd/%s" % (KUBERNETES_MODULE, name) for name in binaries]
    started = time.monotonic()
    stubs = prepare_work_module(
        work_dir, info, packages,
        lambda go_mod: staging_replacements(go_mod, release, os.path.join(work_dir, "stubs")))
    log("resolved %s %s (staging modules at %s) in %.1f s"
        % (KUBERNETES_MODULE, info["Version"], release, time.monotonic() - started))
    if stubs:
        log("NOTE: not published at %s, stubbed: %s" % (release, ", ".join(stubs)))
    return build_packages(work_dir, info, KUBERNETES_MODULE, binaries, packages, bin_dir,
                          kubernetes_ldflags(info, version), BUILD_TAGS, arch, build_info)


def build_packages(work_dir, info, module, names, packages, bin_dir, ldflags, tags, arch, build_info):
    """go build each package of one prepared work module into bin_dir/<name>; returns [(name, seconds)]."""
    timings = []
    for name, package in zip(names, packages):
        log("building %s ..." % name)
        seconds = go_build(work_dir, package, os.path.join(bin_dir, name), ldflags, tags, arch)
        timings.append((name, seconds))
        build_info["binaries"][name] = build_record(info, module, package, arch, seconds)
    return timings


def build_record(info, module, package, arch, seconds):
    """A binary's entry in build-info.json."""
    return {"version": info["Version"], "module": module, "package": package,
            "go": go_version(), "arch": arch, "build_seconds": round(seconds, 1)}


def not_built(bin_dir, names, force):
    """The names to build: all with force, else those without a binary in bin_dir (the others are logged)."""
    wanted = [name for name in names if force or not os.path.exists(os.path.join(bin_dir, name))]
    for name in sorted(set(names) - set(wanted)):
        log("%-24s already built, skipped" % name)
    return wanted


def build_crictl(version, pinned, release_dir, target, arch, build_info):
    info, note = resolve_cri_tools(version[1], pinned)
    if note:
        log("NOTE: " + note)
    work_dir = os.path.join(release_dir, "work", "cri-tools")
    prepare_work_module(work_dir, info, [CRICTL_PACKAGE], module_replacements)
    ldflags = "-s -w -X '%s/pkg/version.Version=%s'" % (CRI_TOOLS_MODULE, info["Version"])
    log("building crictl %s ..." % info["Version"])
    seconds = go_build(work_dir, CRICTL_PACKAGE, target, ldflags, None, arch)
    build_info["binaries"]["crictl"] = build_record(info, CRI_TOOLS_MODULE, CRICTL_PACKAGE, arch, seconds)
    return [("crictl", seconds)]


def kubeadm_etcd_version(kubernetes):
    """The etcd release kubeadm of this Kubernetes release deploys (DefaultEtcdVersion)."""
    path = os.path.join(kubernetes["Dir"], KUBEADM_CONSTANTS)
    try:
        with open(path, encoding="utf-8") as handle:
            match = KUBEADM_ETCD_RE.search(handle.read())
    except OSError as error:
        raise BuildError("cannot read kubeadm's etcd version from %s: %s" % (path, error))
    if not match:
        raise BuildError("%s: no DefaultEtcdVersion; pass --etcd-version" % path)
    return match.group(1)


def resolve_etcd(wanted):
    version = "v%d.%d.%d" % parse_version(wanted)
    info = module_info(ETCD_MODULE, version)
    if not info:
        raise BuildError("%s %s is not on the Go module proxy" % (ETCD_MODULE, version))
    return info


def build_etcd_release(args, kubernetes):
    """Build etcd once into <cache>/etcd/v<version>/bin/; returns (bin_dir, timings)."""
    info = resolve_etcd(args.etcd_version or kubeadm_etcd_version(kubernetes))
    release_dir = os.path.join(args.cache, "etcd", info["Version"])
    bin_dir = os.path.join(release_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    info_path = os.path.join(release_dir, "build-info.json")
    target = os.path.join(bin_dir, ETCD_BINARY)
    with locked(os.path.join(release_dir, ".lock")):
        remove_partial_builds(bin_dir)
        if os.path.exists(target) and not args.force:
            log("%-24s already built, skipped" % ETCD_BINARY)
            return bin_dir, []
        build_info = load_build_info(info_path)
        build_info["etcd_version"] = info["Version"]
        seconds = build_etcd(info, release_dir, target, args.arch)
        build_info["binaries"][ETCD_BINARY] = build_record(info, ETCD_MODULE, ETCD_MODULE, args.arch, seconds)
        save_build_info(info_path, build_info)
    return bin_dir, [(ETCD_BINARY, seconds)]


def build_etcd(info, release_dir, target, arch):
    work_dir = os.path.join(release_dir, "work", "etcd")
    # The sibling etcd modules (api, client, pkg) are published under the same tag.
    prepare_work_module(
        work_dir, info, [ETCD_MODULE],
        lambda go_mod: staging_replacements(go_mod, info["Version"],
                                            os.path.join(work_dir, "stubs")))
    ldflags = "-s -w -X '%s=%s'" % (ETCD_SHA_VARIABLE, module_origin(info).get("Hash", ""))
    log("building etcd %s ..." % info["Version"])
    return go_build(work_dir, ETCD_MODULE, target, ldflags, None, arch)


def resolve_cni_plugins(wanted):
    match = VERSION_RE.match(wanted.strip())
    if not match:
        raise BuildError("--cni-plugins-version %r: expected MAJOR.MINOR.PATCH, e.g. %s"
                         % (wanted, CNI_PLUGINS_VERSION))
    version = "v%s.%s.%s" % match.groups()
    info = module_info(CNI_PLUGINS_MODULE, version)
    if not info:
        raise BuildError("%s %s is not on the Go module proxy" % (CNI_PLUGINS_MODULE, version))
    return info


def build_cni_plugins_release(args):
    """Build the CNI plugins once into <cache>/cni-plugins/v<version>/bin/; returns (bin_dir, timings)."""
    info = resolve_cni_plugins(args.cni_plugins_version)
    release_dir = os.path.join(args.cache, CNI_PLUGINS_TARGET, info["Version"])
    bin_dir = os.path.join(release_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    info_path = os.path.join(release_dir, "build-info.json")
    with locked(os.path.join(release_dir, ".lock")):
        remove_partial_builds(bin_dir)
        wanted = not_built(bin_dir, sorted(CNI_PLUGIN_PACKAGES), args.force)
        if not wanted:
            return bin_dir, []
        build_info = load_build_info(info_path)
        build_info["cni_plugins_version"] = info["Version"]
        timings = build_cni_plugins(info, wanted, release_dir, bin_dir, args.arch, build_info)
        save_build_info(info_path, build_info)
    return bin_dir, timings


def build_cni_plugins(info, names, release_dir, bin_dir, arch, build_info):
    work_dir = os.path.join(release_dir, "work")
    packages = ["%s/%s" % (CNI_PLUGINS_MODULE, CNI_PLUGIN_PACKAGES[name]) for name in names]
    prepare_work_module(work_dir, info, packages, module_replacements)
    # The version each plugin reports about itself, stamped the way the upstream release does.
    ldflags = "-s -w -X '%s=%s'" % (CNI_VERSION_VARIABLE, info["Version"])
    return build_packages(work_dir, info, CNI_PLUGINS_MODULE, names, packages, bin_dir, ldflags, None, arch,
                          build_info)


def resolve_kwok(wanted):
    match = VERSION_RE.match(wanted.strip())
    if not match:
        raise BuildError("--kwok-version %r: expected MAJOR.MINOR.PATCH, e.g. %s"
                         % (wanted, KWOK_VERSION))
    version = "v%s.%s.%s" % match.groups()
    info = module_info(KWOK_MODULE, version)
    if not info:
        raise BuildError("%s %s is not on the Go module proxy" % (KWOK_MODULE, version))
    return info


def kwok_release_dir(cache, version=KWOK_VERSION):
    return os.path.join(cache, KWOK_TARGET, version)


def kwok_stage_paths(release_dir):
    """Where the kwok target puts its Stage files: the --config list for that kwok."""
    return [os.path.join(release_dir, "stages", os.path.basename(relative)) for relative in KWOK_STAGES]


def build_kwok_release(args):
    """Build kwok once into <cache>/kwok/v<version>/bin/, its Stages beside it; returns (bin_dir, timings)."""
    info = resolve_kwok(args.kwok_version)
    release_dir = kwok_release_dir(args.cache, info["Version"])
    bin_dir = os.path.join(release_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    info_path = os.path.join(release_dir, "build-info.json")
    with locked(os.path.join(release_dir, ".lock")):
        remove_partial_builds(bin_dir)
        install_kwok_stages(info, release_dir, args.force)
        wanted = not_built(bin_dir, [KWOK_TARGET], args.force)
        if not wanted:
            return bin_dir, []
        build_info = load_build_info(info_path)
        build_info["kwok_version"] = info["Version"]
        work_dir = os.path.join(release_dir, "work")
        prepare_work_module(work_dir, info, [KWOK_PACKAGE], module_replacements)
        # The release stamps its tag the same way (hack/releases.sh).
        ldflags = "-s -w -X '%s=%s'" % (KWOK_VERSION_VARIABLE, info["Version"])
        timings = build_packages(work_dir, info, KWOK_MODULE, wanted, [KWOK_PACKAGE], bin_dir, ldflags,
                                 None, args.arch, build_info)
        save_build_info(info_path, build_info)
    return bin_dir, timings


def install_kwok_stages(info, release_dir, force):
    """Copy the release's default Stage files out of the module archive, each renamed into place."""
    for relative, target in zip(KWOK_STAGES, kwok_stage_paths(release_dir)):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(target) and not force:
            continue
        source = os.path.join(info["Dir"], relative)
        if not os.path.isfile(source):
            raise BuildError("%s %s has no %s" % (KWOK_MODULE, info["Version"], relative))
        shutil.copyfile(source, target + ".tmp")
        os.replace(target + ".tmp", target)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Build Kubernetes binaries (and crictl) for linux from the Go module "
                    "proxy into a per-version cache, once.",
        epilog="Output: <cache>/kubernetes/v<VERSION>/bin/<binary> plus build-info.json "
               "beside bin/; etcd goes to <cache>/etcd/v<ETCD VERSION>/bin/etcd, the CNI "
               "plugins to <cache>/cni-plugins/v<CNI VERSION>/bin/<plugin>, kwok to "
               "<cache>/kwok/v<KWOK VERSION>/bin/kwok (its Stages in .../stages/). "
               "Example: %(prog)s --version 1.36.3 "
               "--binaries kube-apiserver,kube-controller-manager,kube-scheduler,etcd",
    )
    parser.add_argument("--version", required=True,
                        help="Kubernetes release, e.g. 1.36.3 (the newest patch of its minor "
                             "is used if this one is not on the proxy)")
    parser.add_argument("--binaries", default=",".join(DEFAULT_BINARIES),
                        type=lambda text: [b.strip() for b in text.split(",") if b.strip()],
                        help="comma-separated, default %s; supported: %s"
                             % (",".join(DEFAULT_BINARIES),
                                ",".join(KUBERNETES_BINARIES + OTHER_TARGETS)))
    parser.add_argument("--cache", default=cache.root(),
                        help="cache root (default: $PLINTH_CACHE or ~/.cache/plinth)")
    parser.add_argument("--arch", default="amd64", help="GOARCH to build for (default amd64)")
    parser.add_argument("--crictl-version",
                        help="cri-tools release to build (default: v1.<minor>.x if published, "
                             "else the newest)")
    parser.add_argument("--etcd-version",
                        help="etcd release for the etcd binary (default: the one kubeadm of "
                             "--version deploys, e.g. 3.6.8 for 1.36)")
    parser.add_argument("--cni-plugins-version", default=CNI_PLUGINS_VERSION,
                        help="release of %s for the cni-plugins target (%s: %s; default %s)"
                             % (CNI_PLUGINS_MODULE, CNI_PLUGINS_TARGET,
                                ", ".join(sorted(CNI_PLUGIN_PACKAGES)), CNI_PLUGINS_VERSION))
    parser.add_argument("--kwok-version", default=KWOK_VERSION,
                        help="release of %s for the kwok target (default %s)" % (KWOK_MODULE, KWOK_VERSION))
    parser.add_argument("--no-crictl", action="store_true", help="do not build crictl")
    parser.add_argument("--force", action="store_true", help="rebuild binaries already in the cache")
    return parser.parse_args(argv)


def exit_on_signal(signum, _frame):
    # SystemExit unwinds through the finally blocks that remove temporary files.
    sys.exit("build_kubernetes: stopped by signal %d" % signum)


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_signal)
    args.cache = os.path.abspath(os.path.expanduser(args.cache))
    try:
        build(args)
    except BuildError as error:
        sys.exit("build_kubernetes: %s" % error)


if __name__ == "__main__":
    main()

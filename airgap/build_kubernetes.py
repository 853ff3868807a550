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
other etcd modules with local paths just like Kubernetes' staging modules, with
etcdctl and etcdutl (go.etcd.io/etcd/etcdctl/v3, .../etcdutl/v3) of the same
release, which the upstream etcd image carries beside it for snapshots and
restores. They land in <cache>/etcd/v<etcd version>/bin/.

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
import os
import re
import shutil
import time

from airgap import cache, gomodules

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

# The etcd server module holds the etcd main package at its root; the clients' modules hold theirs.
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
ETCD_BINARY = "etcd"
ETCD_BINARIES = {ETCD_BINARY: ETCD_MODULE, "etcdctl": "go.etcd.io/etcd/etcdctl/v3",
                 "etcdutl": "go.etcd.io/etcd/etcdutl/v3"}
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


def resolve_kubernetes(version):
    """The k8s.io/kubernetes release to build: the one asked for, else the newest patch of its minor."""
    major, minor, patch = version
    wanted = "v%d.%d.%d" % version
    info = gomodules.module_info(KUBERNETES_MODULE, wanted)
    if info:
        return info, None
    info = gomodules.module_info(KUBERNETES_MODULE, "v%d.%d" % (major, minor))
    if not info:
        raise gomodules.BuildError(
            "%s: neither %s nor any v%d.%d.x is on the Go module proxy"
            % (KUBERNETES_MODULE, wanted, major, minor)
        )
    return info, "%s %s is not on the Go module proxy; using %s, the newest v%d.%d.x" % (
        KUBERNETES_MODULE, wanted, info["Version"], major, minor)


def resolve_cri_tools(minor, pinned):
    """cri-tools of the same minor when published, else the newest release."""
    if pinned:
        info = gomodules.module_info(CRI_TOOLS_MODULE, pinned if pinned.startswith("v") else "v" + pinned)
        if not info:
            raise gomodules.BuildError("%s %s is not on the Go module proxy" % (CRI_TOOLS_MODULE, pinned))
        return info, None
    # A minor query needs the proxy's version list, which may omit releases it
    # still serves; the minor's first release is asked for by name as well.
    for query in ("v1.%d" % minor, "v1.%d.0" % minor):
        info = gomodules.module_info(CRI_TOOLS_MODULE, query)
        if info:
            return info, None
    info = gomodules.module_info(CRI_TOOLS_MODULE, "latest")
    if not info:
        raise gomodules.BuildError("%s: no release on the Go module proxy" % CRI_TOOLS_MODULE)
    return info, "%s has no v1.%d.x on the Go module proxy; using %s, the newest" % (
        CRI_TOOLS_MODULE, minor, info["Version"])


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
        if gomodules.module_info(module, release):
            replaces.append("%s => %s %s" % (module, module, release))
            continue
        stub = os.path.join(stub_root, module)
        os.makedirs(stub, exist_ok=True)
        with open(os.path.join(stub, "go.mod"), "w", encoding="utf-8") as handle:
            handle.write("module %s\n" % module)
        replaces.append("%s => %s" % (module, stub))
        stubs.append(module)
    return replaces, stubs


def kubernetes_ldflags(info, version):
    major, minor, _ = version
    values = {
        "gitVersion": info["Version"],
        "gitMajor": str(major),
        "gitMinor": str(minor),
        # Built from the module archive, not a git checkout: Kubernetes calls
        # such a tree "archive". The proxy names the commit only sometimes;
        # an empty one beats the unexpanded "$Format:%H$" placeholder.
        "gitCommit": gomodules.module_origin(info).get("Hash", ""),
        "gitTreeState": "archive",
        # The release's publication time keeps rebuilds byte-identical.
        "buildDate": gomodules.module_time(info),
    }
    flags = ["-s", "-w"]
    for package in VERSION_PACKAGES:
        for key, value in values.items():
            flags.append("-X '%s.%s=%s'" % (package, key, value))
    return " ".join(flags)


def build(args):
    version = gomodules.parse_version(args.version)
    binaries = [name for name in args.binaries if name not in OTHER_TARGETS]
    unknown = sorted(set(binaries) - set(KUBERNETES_BINARIES))
    if unknown:
        raise gomodules.BuildError("--binaries: unknown %s; supported: %s"
                                   % (", ".join(unknown), ", ".join(KUBERNETES_BINARIES + OTHER_TARGETS)))
    if shutil.which("go") is None:
        raise gomodules.BuildError("the go tool is not on PATH")

    kubernetes, note = resolve_kubernetes(version)
    if note:
        gomodules.log("NOTE: " + note)
    version = gomodules.parse_version(kubernetes["Version"])
    release_dir = os.path.join(args.cache, "kubernetes", kubernetes["Version"])
    bin_dir = os.path.join(release_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    info_path = os.path.join(release_dir, "build-info.json")

    with gomodules.locked(os.path.join(release_dir, ".lock")):
        gomodules.remove_partial_builds(bin_dir)
        build_info = gomodules.load_build_info(info_path)
        build_info["kubernetes_version"] = kubernetes["Version"]
        timings = []
        wanted = gomodules.not_built(bin_dir, binaries, args.force)
        if wanted:
            timings += build_kubernetes(kubernetes, version, wanted, release_dir, bin_dir,
                                        args.arch, build_info)
            gomodules.save_build_info(info_path, build_info)
        if not args.no_crictl:
            target = os.path.join(bin_dir, "crictl")
            if os.path.exists(target) and not args.force:
                gomodules.log("%-24s already built, skipped" % "crictl")
            else:
                timings += build_crictl(version, args.crictl_version, release_dir, target,
                                        args.arch, build_info)
                gomodules.save_build_info(info_path, build_info)

    gomodules.report_timings(timings, bin_dir)
    gomodules.log("binaries in %s" % bin_dir)
    if ETCD_BINARY in args.binaries:
        etcd_bin_dir, etcd_timings = build_etcd_release(args, kubernetes)
        gomodules.report_timings(etcd_timings, etcd_bin_dir)
        gomodules.log("etcd in %s" % etcd_bin_dir)
    if CNI_PLUGINS_TARGET in args.binaries:
        cni_bin_dir, cni_timings = build_cni_plugins_release(args)
        gomodules.report_timings(cni_timings, cni_bin_dir)
        gomodules.log("CNI plugins in %s" % cni_bin_dir)
    if KWOK_TARGET in args.binaries:
        kwok_bin_dir, kwok_timings = build_kwok_release(args)
        gomodules.report_timings(kwok_timings, kwok_bin_dir)
        gomodules.log("kwok in %s" % kwok_bin_dir)


def build_kubernetes(info, version, binaries, release_dir, bin_dir, arch, build_info):
    release = "v0.%d.%d" % (version[1], version[2])
    work_dir = os.path.join(release_dir, "work", "kubernetes")
    packages = ["%s/cmd/%s" % (KUBERNETES_MODULE, name) for name in binaries]
    started = time.monotonic()
    stubs = gomodules.prepare_work_module(
        work_dir, info, packages,
        lambda go_mod: staging_replacements(go_mod, release, os.path.join(work_dir, "stubs")))
    gomodules.log("resolved %s %s (staging modules at %s) in %.1f s"
                  % (KUBERNETES_MODULE, info["Version"], release, time.monotonic() - started))
    if stubs:
        gomodules.log("NOTE: not published at %s, stubbed: %s" % (release, ", ".join(stubs)))
    return gomodules.build_packages(work_dir, info, KUBERNETES_MODULE, binaries, packages, bin_dir,
                                    kubernetes_ldflags(info, version), BUILD_TAGS, arch, build_info)


def build_crictl(version, pinned, release_dir, target, arch, build_info):
    info, note = resolve_cri_tools(version[1], pinned)
    if note:
        gomodules.log("NOTE: " + note)
    work_dir = os.path.join(release_dir, "work", "cri-tools")
    gomodules.prepare_work_module(work_dir, info, [CRICTL_PACKAGE], gomodules.module_replacements)
    ldflags = "-s -w -X '%s/pkg/version.Version=%s'" % (CRI_TOOLS_MODULE, info["Version"])
    gomodules.log("building crictl %s ..." % info["Version"])
    seconds = gomodules.go_build(work_dir, CRICTL_PACKAGE, target, ldflags, None, arch)
    build_info["binaries"]["crictl"] = gomodules.build_record(info, CRI_TOOLS_MODULE, CRICTL_PACKAGE, arch, seconds)
    return [("crictl", seconds)]


def kubeadm_etcd_version(kubernetes):
    """The etcd release kubeadm of this Kubernetes release deploys (DefaultEtcdVersion)."""
    path = os.path.join(kubernetes["Dir"], KUBEADM_CONSTANTS)
    try:
        with open(path, encoding="utf-8") as handle:
            match = KUBEADM_ETCD_RE.search(handle.read())
    except OSError as error:
        raise gomodules.BuildError("cannot read kubeadm's etcd version from %s: %s" % (path, error))
    if not match:
        raise gomodules.BuildError("%s: no DefaultEtcdVersion; pass --etcd-version" % path)
    return match.group(1)


def resolve_etcd(wanted, module=ETCD_MODULE):
    version = "v%d.%d.%d" % gomodules.parse_version(wanted)
    info = gomodules.module_info(module, version)
    if not info:
        raise gomodules.BuildError("%s %s is not on the Go module proxy" % (module, version))
    return info


def build_etcd_release(args, kubernetes):
    """Build etcd, etcdctl and etcdutl once into <cache>/etcd/v<version>/bin/; returns (bin_dir, timings)."""
    info = resolve_etcd(args.etcd_version or kubeadm_etcd_version(kubernetes))
    release_dir = os.path.join(args.cache, "etcd", info["Version"])
    bin_dir = os.path.join(release_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    info_path = os.path.join(release_dir, "build-info.json")
    timings = []
    with gomodules.locked(os.path.join(release_dir, ".lock")):
        gomodules.remove_partial_builds(bin_dir)
        wanted = gomodules.not_built(bin_dir, sorted(ETCD_BINARIES), args.force)
        build_info = gomodules.load_build_info(info_path)
        build_info["etcd_version"] = info["Version"]
        for name in wanted:
            module = ETCD_BINARIES[name]
            module_info = info if module == ETCD_MODULE else resolve_etcd(info["Version"], module)
            seconds = build_etcd(module_info, name, release_dir, os.path.join(bin_dir, name), args.arch)
            build_info["binaries"][name] = gomodules.build_record(module_info, module, module, args.arch, seconds)
            gomodules.save_build_info(info_path, build_info)
            timings.append((name, seconds))
    return bin_dir, timings


def build_etcd(info, name, release_dir, target, arch):
    """One etcd binary from the main package at the root of its module (``info``)."""
    work_dir = os.path.join(release_dir, "work", name)
    module = info["Path"]
    # The sibling etcd modules (api, client, pkg, server) are published under the same tag.
    gomodules.prepare_work_module(
        work_dir, info, [module],
        lambda go_mod: staging_replacements(go_mod, info["Version"],
                                            os.path.join(work_dir, "stubs")))
    ldflags = "-s -w -X '%s=%s'" % (ETCD_SHA_VARIABLE, gomodules.module_origin(info).get("Hash", ""))
    gomodules.log("building %s %s ..." % (name, info["Version"]))
    return gomodules.go_build(work_dir, module, target, ldflags, None, arch)


def resolve_cni_plugins(wanted):
    match = gomodules.VERSION_RE.match(wanted.strip())
    if not match:
        raise gomodules.BuildError("--cni-plugins-version %r: expected MAJOR.MINOR.PATCH, e.g. %s"
                                   % (wanted, CNI_PLUGINS_VERSION))
    version = "v%s.%s.%s" % match.groups()
    info = gomodules.module_info(CNI_PLUGINS_MODULE, version)
    if not info:
        raise gomodules.BuildError("%s %s is not on the Go module proxy" % (CNI_PLUGINS_MODULE, version))
    return info


def build_cni_plugins_release(args):
    """Build the CNI plugins once into <cache>/cni-plugins/v<version>/bin/; returns (bin_dir, timings)."""
    info = resolve_cni_plugins(args.cni_plugins_version)
    release_dir = os.path.join(args.cache, CNI_PLUGINS_TARGET, info["Version"])
    bin_dir = os.path.join(release_dir, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    info_path = os.path.join(release_dir, "build-info.json")
    with gomodules.locked(os.path.join(release_dir, ".lock")):
        gomodules.remove_partial_builds(bin_dir)
        wanted = gomodules.not_built(bin_dir, sorted(CNI_PLUGIN_PACKAGES), args.force)
        if not wanted:
            return bin_dir, []
        build_info = gomodules.load_build_info(info_path)
        build_info["cni_plugins_version"] = info["Version"]
        timings = build_cni_plugins(info, wanted, release_dir, bin_dir, args.arch, build_info)
        gomodules.save_build_info(info_path, build_info)
    return bin_dir, timings


def build_cni_plugins(info, names, release_dir, bin_dir, arch, build_info):
    work_dir = os.path.join(release_dir, "work")
    packages = ["%s/%s" % (CNI_PLUGINS_MODULE, CNI_PLUGIN_PACKAGES[name]) for name in names]
    gomodules.prepare_work_module(work_dir, info, packages, gomodules.module_replacements)
    # The version each plugin reports about itself, stamped the way the upstream release does.
    ldflags = "-s -w -X '%s=%s'" % (CNI_VERSION_VARIABLE, info["Version"])
    return gomodules.build_packages(work_dir, info, CNI_PLUGINS_MODULE, names, packages, bin_dir, ldflags, None,
                                    arch, build_info)


def resolve_kwok(wanted):
    match = gomodules.VERSION_RE.match(wanted.strip())
    if not match:
        raise gomodules.BuildError("--kwok-version %r: expected MAJOR.MINOR.PATCH, e.g. %s"
                                   % (wanted, KWOK_VERSION))
    version = "v%s.%s.%s" % match.groups()
    info = gomodules.module_info(KWOK_MODULE, version)
    if not info:
        raise gomodules.BuildError("%s %s is not on the Go module proxy" % (KWOK_MODULE, version))
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
    with gomodules.locked(os.path.join(release_dir, ".lock")):
        gomodules.remove_partial_builds(bin_dir)
        install_kwok_stages(info, release_dir, args.force)
        wanted = gomodules.not_built(bin_dir, [KWOK_TARGET], args.force)
        if not wanted:
            return bin_dir, []
        build_info = gomodules.load_build_info(info_path)
        build_info["kwok_version"] = info["Version"]
        work_dir = os.path.join(release_dir, "work")
        gomodules.prepare_work_module(work_dir, info, [KWOK_PACKAGE], gomodules.module_replacements)
        # The release stamps its tag the same way (hack/releases.sh).
        ldflags = "-s -w -X '%s=%s'" % (KWOK_VERSION_VARIABLE, info["Version"])
        timings = gomodules.build_packages(work_dir, info, KWOK_MODULE, wanted, [KWOK_PACKAGE], bin_dir, ldflags,
                                           None, args.arch, build_info)
        gomodules.save_build_info(info_path, build_info)
    return bin_dir, timings


def install_kwok_stages(info, release_dir, force):
    """Copy the release's default Stage files out of the module archive, each renamed into place."""
    for relative, target in zip(KWOK_STAGES, kwok_stage_paths(release_dir)):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.exists(target) and not force:
            continue
        source = os.path.join(info["Dir"], relative)
        if not os.path.isfile(source):
            raise gomodules.BuildError("%s %s has no %s" % (KWOK_MODULE, info["Version"], relative))
        shutil.copyfile(source, target + ".tmp")
        os.replace(target + ".tmp", target)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Build Kubernetes binaries (and crictl) for linux from the Go module "
                    "proxy into a per-version cache, once.",
        epilog="Output: <cache>/kubernetes/v<VERSION>/bin/<binary> plus build-info.json "
               "beside bin/; etcd, etcdctl and etcdutl go to <cache>/etcd/v<ETCD VERSION>/bin/, the CNI "
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


def main(argv=None):
    gomodules.run_tool("build_kubernetes", parse_args, build, argv)


if __name__ == "__main__":
    main()

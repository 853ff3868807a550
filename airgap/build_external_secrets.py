#!/usr/bin/env python3
"""Build the External Secrets Operator (ESO) controller from its Go module, with its CRDs.

The controller is the root command of github.com/external-secrets/external-secrets
(main.go -> cmd/controller; `webhook` and `certcontroller` are subcommands of the same
binary). This script writes a small main module that requires the release, repeats the
upstream replace directives, and builds that package with CGO_ENABLED=0, as the upstream
Makefile does (`go build main.go`; ESO stamps no version into the binary).

Which releases build from the Go module proxy alone, as found:
  - v0.17.0 .. v0.20.4: one module, no local replaces; the proxy serves them by tag
    (its version list shows only v0.16.2 and v1.3.2, but v0.17.0, v0.18.2, v0.19.2 and
    v0.20.4 download).
  - v1.0.0 .. v1.3.2: the go.mod replaces the apis, runtime, generators/v1/* and
    providers/v1/* modules with local paths (54 to 56 of them), which the module archive
    leaves out. The proxy has none of those nested modules at any version (404 for their
    version lists, 403 "not available" for the pseudo-versions v1.3.2 requires), so the
    build stops here, naming the first one missing. The proxy refuses v1.0.0 .. v1.3.1
    outright (403 "This module version is not available"; v1.0.0, v1.1.0, v1.2.1, v1.3.1 tried).
  - v2.x: the go.mod still declares github.com/external-secrets/external-secrets
    without a /v2 suffix, so a v2.x.y tag is no valid version of either module path;
    only a pseudo-version of its commit could name it, and the proxy refuses that too.
So the newest release that builds is v0.20.4 (the default).

Output, in <cache>/external-secrets/v<version>/ (cache: ${PLINTH_CACHE:-~/.cache/plinth}):
  bin/external-secrets   the binary, renamed into place when complete
  crds/*.yaml            the release's CRDs (config/crds/bases of the module)
  build-info.json        versions, build time, peak memory
All of it comes from the Go module cache; none of it belongs in the repository.
A binary already built is skipped (--force rebuilds).

A cold build of v0.20.4 took 84 s to download and resolve the modules and 335 s to compile
and link on two cores (7 minutes in all, with the Go build cache the project's other builds
share, not emptied first); its largest single process peaked at 2.5 GiB RSS; the stripped
binary is 184 MiB.
"""

import argparse
import os
import resource
import shutil
import time

from airgap import build_argocd, gomodules

ESO_MODULE = "github.com/external-secrets/external-secrets"
ESO_PACKAGE = ESO_MODULE
# The external-secrets chart 2.9.0 that the inventories pin deploys v2.9.0 (its
# appVersion), which cannot be built from the Go module proxy (see above); the tests run
# the newest release that can. It serves the external-secrets.io/v1 API as v2.9.0 does.
DEFAULT_VERSION = "0.20.4"
BINARY = "external-secrets"
# Where the release keeps its CRDs: one file per CRD, else the bundle of all of them.
CRD_SOURCES = (os.path.join("config", "crds", "bases"), os.path.join("deploy", "crds", "bundle.yaml"))
# A required version that no proxy can ever serve: a replace target's placeholder.
PLACEHOLDER_VERSIONS = ("v0.0.0", "v0.0.0-00010101000000-000000000000")


class BuildError(gomodules.BuildError):
    pass


def log(message):
    gomodules.log(message)


def release_dir(cache_root, version):
    return os.path.join(cache_root, "external-secrets", "v%d.%d.%d" % gomodules.parse_version(version))


def resolve_eso(version):
    wanted = "v%d.%d.%d" % gomodules.parse_version(version)
    if gomodules.parse_version(version)[0] >= 2:
        raise BuildError("%s %s: the release's go.mod declares %s without a /v%d suffix, so "
                         "Go cannot name it by its tag; build %s or older (see this script's "
                         "docstring)" % (ESO_MODULE, wanted, ESO_MODULE, gomodules.parse_version(version)[0],
                                         DEFAULT_VERSION))
    info = gomodules.module_info(ESO_MODULE, wanted)
    if not info:
        raise BuildError("%s %s is not on the Go module proxy" % (ESO_MODULE, wanted))
    return info


def replaces_from_proxy(go_mod):
    """The upstream replaces; a local-path one only when the proxy has that nested module."""
    replaces = []
    for old, new in go_mod["replace"]:
        if not new.startswith("."):
            replaces.append("%s => %s" % (old, new))
            continue
        module = old.split()[0]
        required = go_mod["require"].get(module)
        if required is None:
            continue
        info = None if required in PLACEHOLDER_VERSIONS else gomodules.module_info(module, required)
        if not info:
            local = sum(1 for _, target in go_mod["replace"] if target.startswith("."))
            raise BuildError(
                "%s replaces %s with %s, which its module archive leaves out, and the Go module "
                "proxy has no %s@%s (the release has %d such nested modules); build %s instead"
                % (ESO_MODULE, module, new, module, required, local, DEFAULT_VERSION))
        replaces.append("%s => %s %s" % (module, module, info["Version"]))
    return replaces, []


def find_crds(module_dir):
    """CRD files of the release in its module directory: (source path, [files])."""
    for source in CRD_SOURCES:
        path = os.path.join(module_dir, source)
        if os.path.isdir(path):
            files = sorted(os.path.join(path, name) for name in os.listdir(path)
                           if name.endswith(".yaml") and name != "kustomization.yaml")
            if files:
                return source, files
        elif os.path.isfile(path):
            return source, [path]
    raise BuildError("%s: no CRDs in %s" % (module_dir, " or ".join(CRD_SOURCES)))


def install_crds(info, release):
    """The release's CRDs into <release>/crds, replacing what an earlier run put there."""
    source, files = find_crds(info["Dir"])
    crd_dir = os.path.join(release, "crds")
    temp = crd_dir + ".tmp"
    shutil.rmtree(temp, ignore_errors=True)
    os.makedirs(temp)
    for path in files:
        target = os.path.join(temp, os.path.basename(path))
        shutil.copyfile(path, target)
        os.chmod(target, 0o644)
    shutil.rmtree(crd_dir, ignore_errors=True)
    os.replace(temp, crd_dir)
    return source, len(files)


def build(args):
    if shutil.which("go") is None:
        raise BuildError("the go tool is not on PATH")
    info = resolve_eso(args.version)
    go_mod = gomodules.read_go_mod(info["GoMod"])
    toolchain = build_argocd.choose_toolchain(go_mod["go"])
    replaces_from_proxy(go_mod)  # stops before the cache is touched when the proxy lacks a part
    release = release_dir(args.cache, args.version)
    bin_dir = os.path.join(release, "bin")
    target = os.path.join(bin_dir, BINARY)
    _seconds, (source, count) = gomodules.build_once(
        release, target, args.force, {"external_secrets_version": info["Version"]},
        lambda build_info: build_binary(info, release, target, args, toolchain, build_info),
        beside=lambda: install_crds(info, release))
    log("External Secrets %s in %s (%d CRDs from %s in %s)" % (
        info["Version"], bin_dir, count, source, os.path.join(release, "crds")))


def build_binary(info, release, target, args, toolchain, build_info):
    work_dir = os.path.join(release, "work")
    started = time.monotonic()
    gomodules.prepare_work_module(work_dir, info, [ESO_PACKAGE], replaces_from_proxy)
    resolve_seconds = time.monotonic() - started
    log("resolved %s %s in %.1f s" % (ESO_MODULE, info["Version"], resolve_seconds))
    log("building %s %s (cold: 6-10 min) ..." % (BINARY, info["Version"]))
    seconds = gomodules.go_build(work_dir, ESO_PACKAGE, target, "-s -w", None, args.arch)
    record = gomodules.build_record(info, ESO_MODULE, ESO_PACKAGE, args.arch, seconds)
    record.update({
        "toolchain": toolchain,
        "resolve_seconds": round(resolve_seconds, 1),
        "commit": gomodules.module_origin(info).get("Hash", ""),
        # Largest single process of the build (compile or link), not the sum of parallel ones.
        "max_process_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "size_mib": round(os.path.getsize(target) / 2**20, 1),
    })
    build_info["binaries"][BINARY] = record
    return seconds


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Build the External Secrets Operator controller for linux from the Go "
                    "module proxy into a per-version cache, once, with its CRDs.",
        epilog="Output: <cache>/external-secrets/v<VERSION>/bin/external-secrets, crds/ and "
               "build-info.json. Example: %(prog)s --version 0.20.4",
    )
    parser.add_argument("--version", default=DEFAULT_VERSION,
                        help="ESO release, default %s (the newest the Go module proxy can build; "
                             "the pinned chart 2.9.0 deploys v2.9.0)" % DEFAULT_VERSION)
    gomodules.add_build_options(parser)
    return parser.parse_args(argv)


def main(argv=None):
    gomodules.run_tool("build_external_secrets", parse_args, build, argv)


if __name__ == "__main__":
    main()

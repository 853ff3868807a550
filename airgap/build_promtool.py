#!/usr/bin/env python3
"""Build promtool, Prometheus' rule checker and rule unit-test runner, from its Go module.

The repository's tests run `promtool check rules` and `promtool test rules` on the alerting
rules the collection renders; promtool is the only tool that evaluates PromQL exactly as
Prometheus does. It is the package cmd/promtool of github.com/prometheus/prometheus, whose
Go module versions are v0.<major><minor 2 digits>.<patch> (v0.316.0 is Prometheus 3.16.0);
its go.mod has no replace directive, so a small main module that requires it builds it as
it is, statically (CGO_ENABLED=0), with the version stamped the way Prometheus' own release
build stamps it (prometheus/common's version package).

Output, in <cache>/promtool/v<module version>/ (cache: ${PLINTH_CACHE:-~/.cache/plinth}):
  bin/promtool      the binary, renamed into place when complete
  build-info.json   versions, build time, peak memory
A binary already built is skipped (--force rebuilds).

Built with the remove_all_sd tag, a cold build of v0.316.0 (empty Go build cache, on two cores
shared with a running test suite) took 17 s to resolve the modules and 166 s to compile and
link; its largest single process peaked at 0.9 GiB RSS and the stripped binary is 52 MiB.
With every discovery provider it took 343 s, peaked at 3.1 GiB and was 84 MiB.
"""

import argparse
import os
import resource
import shutil
import time

from airgap import build_argocd, cache, gomodules

PROMETHEUS_MODULE = "github.com/prometheus/prometheus"
PROMTOOL_PACKAGE = PROMETHEUS_MODULE + "/cmd/promtool"
VERSION_PACKAGE = "github.com/prometheus/common/version"
# Rules are checked and unit-tested without any service discovery: leaving every provider out
# (Prometheus 3.10 and later) drops the cloud SDKs and client-go from the build.
BUILD_TAGS = "remove_all_sd"
# The newest Prometheus module version the Go module proxy serves here.
DEFAULT_VERSION = "0.316.0"
BINARY = "promtool"


class BuildError(gomodules.BuildError):
    pass


def log(message):
    gomodules.log(message)


def module_version(version):
    return "v%d.%d.%d" % gomodules.parse_version(version)


def release_dir(cache_root, version):
    return os.path.join(cache_root, BINARY, module_version(version))


def binary_path(cache_root=None, version=DEFAULT_VERSION):
    """Where the build leaves promtool, built or not."""
    return os.path.join(release_dir(cache_root or cache.root(), version), "bin", BINARY)


def prometheus_version(version):
    """The Prometheus release a module version stands for: v0.316.0 -> 3.16.0."""
    _major, minor, patch = gomodules.parse_version(version)
    return "%d.%d.%d" % (minor // 100, minor % 100, patch)


def resolve(version):
    info = gomodules.module_info(PROMETHEUS_MODULE, module_version(version))
    if not info:
        raise BuildError("%s %s is not on the Go module proxy" % (PROMETHEUS_MODULE, module_version(version)))
    return info


def build(args):
    if shutil.which("go") is None:
        raise BuildError("the go tool is not on PATH")
    info = resolve(args.version)
    go_mod = gomodules.read_go_mod(info["GoMod"])
    toolchain = build_argocd.choose_toolchain(go_mod["go"])
    release = release_dir(args.cache, args.version)
    target = os.path.join(release, "bin", BINARY)
    gomodules.build_once(release, target, args.force, {"prometheus_version": info["Version"]},
                         lambda build_info: build_binary(info, release, target, args, toolchain, build_info))
    log("promtool %s (Prometheus %s) in %s" % (info["Version"], prometheus_version(args.version), target))


def build_binary(info, release, target, args, toolchain, build_info):
    work_dir = os.path.join(release, "work")
    started = time.monotonic()
    gomodules.prepare_work_module(work_dir, info, [PROMTOOL_PACKAGE], gomodules.module_replacements)
    resolve_seconds = time.monotonic() - started
    log("resolved %s %s in %.1f s" % (PROMETHEUS_MODULE, info["Version"], resolve_seconds))
    log("building %s %s (cold: about 3 minutes) ..." % (BINARY, info["Version"]))
    ldflags = "-s -w -X %s.Version=%s" % (VERSION_PACKAGE, prometheus_version(args.version))
    seconds = gomodules.go_build(work_dir, PROMTOOL_PACKAGE, target, ldflags, BUILD_TAGS, args.arch)
    record = gomodules.build_record(info, PROMETHEUS_MODULE, PROMTOOL_PACKAGE, args.arch, seconds)
    record.update({
        "toolchain": toolchain,
        "tags": BUILD_TAGS,
        "resolve_seconds": round(resolve_seconds, 1),
        # Largest single process of the build (compile or link), not the sum of parallel ones.
        "max_process_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "size_mib": round(os.path.getsize(target) / 2**20, 1),
    })
    build_info["binaries"][BINARY] = record
    return seconds


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Build promtool for linux from the Go module proxy into a per-version cache, once.",
        epilog="Output: <cache>/promtool/v<VERSION>/bin/promtool and build-info.json. "
               "Example: %(prog)s --version 0.316.0",
    )
    parser.add_argument("--version", default=DEFAULT_VERSION,
                        help="Prometheus Go module version, default %s (Prometheus %s)"
                             % (DEFAULT_VERSION, prometheus_version(DEFAULT_VERSION)))
    gomodules.add_build_options(parser)
    return parser.parse_args(argv)


def main(argv=None):
    gomodules.run_tool("build_promtool", parse_args, build, argv)


if __name__ == "__main__":
    main()

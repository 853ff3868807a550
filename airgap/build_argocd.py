#!/usr/bin/env python3
"""Build Argo CD (application-controller, repo-server, CLI) from its Go module.

github.com/argoproj/argo-cd/v3 cannot be built with `go install ...@version`:
its go.mod replaces the Kubernetes modules with one release (k8s.io/* =>
v0.34.0 for v3.4) and, since v3.4, its gitops-engine with the nested module
./gitops-engine, which is not part of the module archive. This script writes a
small main module that requires argo-cd/v3 at the release, repeats the upstream
replace directives read from its go.mod, resolves each local-path replace (see
below), and builds the one multi-call binary ./cmd, which dispatches on its own
file name, with CGO_ENABLED=0 and the version stamped like the upstream Makefile.

Output, in <cache>/argocd/v<version>/ (cache: ${PLINTH_CACHE:-~/.cache/plinth}):
  bin/argocd                          the binary, renamed into place when complete
  bin/argocd-application-controller   -> argocd
  bin/argocd-repo-server              -> argocd
  bin/git-verify-wrapper.sh           repo-server runs it from PATH
  crds/{application,appproject,applicationset}-crd.yaml
  build-info.json                     versions, gitops-engine source, build time
All of it is copied from the Go module cache at build time; none of it belongs
in the repository. A binary already built is skipped (--force rebuilds).

The gitops-engine replace (`=> ./gitops-engine`) is resolved in this order:
  1. the version argo-cd requires, if the Go module proxy has it: true from
     v3.6 on, where gitops-engine/v3 is tagged gitops-engine/vX.Y.Z;
  2. --gitops-engine-source: a directory holding that module, or a git
     repository of argo-cd (`git archive v<version> gitops-engine`, after
     checking that the tag's go.mod is the module's);
  3. otherwise the build stops. For v3.4.x and v3.5.x the proxy has no usable
     version: the required v0.7.1-0.20250908182407-97ad5b59a627 is a commit of
     the old standalone repository without that directory (403), there is no
     gitops-engine/v3.4.x tag, and the newest pseudo-version (from main) changed
     ManageServerSideDiffDryRuns' signature, so v3.4's controller does not
     compile against it. gitops-engine changes between v3.4 patch releases: only
     the release tag's own tree is right.

A cold build of v3.4.4 took 46 s to resolve and 699 s to compile and link on two
cores shared with another build; its largest single process peaked at 2.0 GiB RSS.
v3.6.2 (the default) took 24 s to resolve (with the toolchain download) and 373 s
to build with a Go build cache warm from v3.4.4.
Releases whose go.mod asks for a newer Go than the local one are built with
GOTOOLCHAIN=go1.27.3 (the one toolchain download this project allows).
"""

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time

from airgap import gomodules

ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
ARGOCD_PACKAGE = ARGOCD_MODULE + "/cmd"
# The argo-cd chart 10.1.1 that the inventories pin deploys v3.4.4 (its appVersion), but no
# v3.4 or v3.5 release builds from the Go module proxy alone (see above): the tests run the
# nearest release that does, v3.6.2, with GOTOOLCHAIN=go1.27.3. The Application, AppProject
# and health APIs the platform uses are the same in both.
DEFAULT_VERSION = "3.6.2"
BINARY = "argocd"
# Names the multi-call binary answers to (cmd/main.go switches on its file name).
COMMANDS = ("argocd-application-controller", "argocd-repo-server")
GIT_VERIFY_WRAPPER = os.path.join("hack", "git-verify-wrapper.sh")
CRDS = ("application-crd.yaml", "appproject-crd.yaml", "applicationset-crd.yaml")
CRD_DIR = os.path.join("manifests", "crds")
# The upstream Makefile's LDFLAGS set these variables of ${PACKAGE}.
VERSION_PACKAGE = ARGOCD_MODULE + "/common"
# The only toolchain download allowed here, for releases that need a newer Go.
APPROVED_TOOLCHAIN = "go1.27.3"


class BuildError(gomodules.BuildError):
    pass


def log(message):
    gomodules.log(message)


def version_tuple(text):
    """'1.26.8' / 'go1.26.8' / '1.27' -> (1, 26, 8)."""
    parts = text.strip().lstrip("go").split(".")
    numbers = []
    for part in parts[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        numbers.append(int(digits or 0))
    return tuple(numbers + [0] * (3 - len(numbers)))


def choose_toolchain(go_line):
    """Set GOTOOLCHAIN when the module's go line is newer than the local go; returns the one used."""
    local = os.environ.get("GOTOOLCHAIN", "")
    if local and local not in ("local", "auto"):
        return local
    os.environ["GOTOOLCHAIN"] = "local"
    have = version_tuple(gomodules.go_version())
    if not go_line or version_tuple(go_line) <= have:
        return "local (go%d.%d.%d)" % have
    if version_tuple(go_line) > version_tuple(APPROVED_TOOLCHAIN):
        raise BuildError("go.mod asks for go %s; the local go is %d.%d.%d and the approved "
                         "toolchain %s is older too" % ((go_line,) + have + (APPROVED_TOOLCHAIN,)))
    os.environ["GOTOOLCHAIN"] = APPROVED_TOOLCHAIN
    log("NOTE: go.mod asks for go %s; building with GOTOOLCHAIN=%s" % (go_line, APPROVED_TOOLCHAIN))
    return APPROVED_TOOLCHAIN


def resolve_argocd(version):
    wanted = "v%d.%d.%d" % gomodules.parse_version(version)
    info = gomodules.module_info(ARGOCD_MODULE, wanted)
    if not info and os.environ.get("GOTOOLCHAIN") != APPROVED_TOOLCHAIN:
        # A local go older than the release's go line refuses even to download it.
        os.environ["GOTOOLCHAIN"] = APPROVED_TOOLCHAIN
        info = gomodules.module_info(ARGOCD_MODULE, wanted)
    if not info:
        raise BuildError("%s %s is not on the Go module proxy" % (ARGOCD_MODULE, wanted))
    return info


class ReplaceResolver:
    """Turns the upstream replace directives into ones a requiring module can use."""

    def __init__(self, info, work_dir, source):
        self.info = info
        self.work_dir = work_dir
        self.source = source
        self.resolved = {}

    def __call__(self, go_mod):
        replaces = []
        for old, new in go_mod["replace"]:
            if not new.startswith("."):
                replaces.append("%s => %s" % (old, new))
                continue
            module = old.split()[0]
            if module not in go_mod["require"]:
                continue
            replaces.append(self.local_replace(module, go_mod["require"][module], new))
        return replaces, []

    def local_replace(self, module, required, subdir):
        info = gomodules.module_info(module, required)
        if info:
            self.resolved[module] = {"source": "proxy", "version": info["Version"]}
            return "%s => %s %s" % (module, module, info["Version"])
        if not self.source:
            raise BuildError(
                "%s replaces %s with %s, which its module archive leaves out, and the Go module "
                "proxy has no %s@%s. Pass --gitops-engine-source: a directory holding that module, "
                "or a git repository of argo-cd that has the tag %s (see this script's docstring)."
                % (ARGOCD_MODULE, module, subdir, module, required, self.info["Version"]))
        directory, record = self.materialise(module, subdir.lstrip("./"))
        self.resolved[module] = record
        return "%s => %s" % (module, directory)

    def materialise(self, module, subdir):
        """The module's source as a directory: given as one, or extracted from a git tag."""
        if declared_module(self.source) == module:
            return os.path.abspath(self.source), {"source": "directory", "path": self.source}
        if not is_git(self.source):
            raise BuildError("--gitops-engine-source %r: neither a module directory nor a git "
                             "repository" % self.source)
        tag = self.info["Version"]
        commit = git(self.source, "rev-list", "-n", "1", tag).strip()
        upstream_go_mod = git(self.source, "show", "%s:go.mod" % tag)
        with open(self.info["GoMod"], encoding="utf-8") as handle:
            if handle.read() != upstream_go_mod:
                raise BuildError("--gitops-engine-source %r: go.mod at tag %s differs from the "
                                 "module's; not the release" % (self.source, tag))
        target = os.path.join(self.work_dir, "src", tag)
        if not os.path.isfile(os.path.join(target, subdir, "go.mod")):
            extract_subtree(self.source, tag, subdir, target)
        directory = os.path.join(target, subdir)
        check_module_path(directory, module)
        return directory, {"source": "git", "repository": os.path.abspath(self.source),
                           "tag": tag, "commit": commit, "path": subdir}


def is_git(path):
    result = subprocess.run(["git", "-C", path, "rev-parse", "--git-dir"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return result.returncode == 0


def git(repository, *args):
    result = subprocess.run(["git", "-C", repository] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise BuildError("git %s in %s failed: %s" % (" ".join(args), repository, result.stderr.strip()))
    return result.stdout


def extract_subtree(repository, tag, subdir, target):
    """`git archive tag subdir` unpacked to target, renamed into place when complete."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    temp = tempfile.mkdtemp(prefix=".extract.", dir=os.path.dirname(target))
    try:
        archive = subprocess.Popen(["git", "-C", repository, "archive", "--format=tar", tag, subdir],
                                   stdout=subprocess.PIPE)
        unpacked = subprocess.run(["tar", "-x", "-C", temp], stdin=archive.stdout, check=False)
        archive.stdout.close()
        if archive.wait() != 0 or unpacked.returncode != 0:
            raise BuildError("git archive %s %s from %s failed" % (tag, subdir, repository))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(temp, target)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def declared_module(directory):
    """The module path a directory's go.mod declares, or None."""
    try:
        with open(os.path.join(directory, "go.mod"), encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("module "):
                    return line.split()[1]
    except (OSError, IndexError):
        pass
    return None


def check_module_path(directory, module):
    if declared_module(directory) != module:
        raise BuildError("%s/go.mod declares %r, not module %s"
                         % (directory, declared_module(directory), module))


def argocd_ldflags(info, go_mod, commit, tree_state):
    """The upstream Makefile's LDFLAGS (common.version etc.), for a build from the module archive."""
    client_go = dict(go_mod["require"])
    for old, new in go_mod["replace"]:
        parts = new.split()
        if old.split()[0] == "k8s.io/client-go" and len(parts) == 2:
            client_go["k8s.io/client-go"] = parts[1]
    values = {
        "version": info["Version"].lstrip("v"),
        "buildDate": gomodules.module_time(info),
        "gitCommit": commit,
        "gitTag": info["Version"],
        "gitTreeState": tree_state,
        "kubectlVersion": client_go.get("k8s.io/client-go", ""),
    }
    flags = ["-s", "-w"]
    for key, value in values.items():
        flags.append("-X '%s.%s=%s'" % (VERSION_PACKAGE, key, value))
    return " ".join(flags)


def install_support_files(info, release_dir, bin_dir):
    """Command symlinks, git-verify-wrapper.sh and the CRDs, from the module cache."""
    for name in COMMANDS:
        link = os.path.join(bin_dir, name)
        if os.path.islink(link) and os.readlink(link) == BINARY:
            continue
        temp = os.path.join(bin_dir, ".%s.link" % name)
        if os.path.lexists(temp):
            os.unlink(temp)
        os.symlink(BINARY, temp)
        os.replace(temp, link)
    copy_file(os.path.join(info["Dir"], GIT_VERIFY_WRAPPER),
              os.path.join(bin_dir, os.path.basename(GIT_VERIFY_WRAPPER)), 0o755)
    crd_dir = os.path.join(release_dir, "crds")
    os.makedirs(crd_dir, exist_ok=True)
    for name in CRDS:
        copy_file(os.path.join(info["Dir"], CRD_DIR, name), os.path.join(crd_dir, name), 0o644)


def copy_file(source, target, mode):
    temp = os.path.join(os.path.dirname(target), ".%s.copy" % os.path.basename(target))
    shutil.copyfile(source, temp)
    os.chmod(temp, mode)
    os.replace(temp, target)


def build(args):
    if shutil.which("go") is None:
        raise BuildError("the go tool is not on PATH")
    info = resolve_argocd(args.version)
    go_mod = gomodules.read_go_mod(info["GoMod"])
    toolchain = choose_toolchain(go_mod["go"])
    release_dir = os.path.join(args.cache, "argocd", info["Version"])
    bin_dir = os.path.join(release_dir, "bin")
    target = os.path.join(bin_dir, BINARY)
    gomodules.build_once(
        release_dir, target, args.force, {"argocd_version": info["Version"]},
        lambda build_info: build_binary(info, go_mod, release_dir, target, args, toolchain, build_info),
        beside=lambda: install_support_files(info, release_dir, bin_dir))
    log("Argo CD %s in %s (CRDs in %s)" % (info["Version"], bin_dir, os.path.join(release_dir, "crds")))


def build_binary(info, go_mod, release_dir, target, args, toolchain, build_info):
    work_dir = os.path.join(release_dir, "work")
    resolver = ReplaceResolver(info, work_dir, args.gitops_engine_source)
    started = time.monotonic()
    gomodules.prepare_work_module(work_dir, info, [ARGOCD_PACKAGE], resolver)
    log("resolved %s %s in %.1f s; local replaces: %s" % (
        ARGOCD_MODULE, info["Version"], time.monotonic() - started,
        ", ".join("%s from %s" % (module, record["source"])
                  for module, record in sorted(resolver.resolved.items())) or "none"))
    commit = gomodules.module_origin(info).get("Hash", "")
    for record in resolver.resolved.values():
        commit = commit or record.get("commit", "")
    # Sources that are the tag's own files (the module archive, gitops-engine from the proxy
    # or from the same tag) with a known commit are "clean": Argo CD then reports v<version>.
    # A directory given by hand is not verified; as in build_kubernetes, that is "archive".
    verified = all(record["source"] in ("proxy", "git") for record in resolver.resolved.values())
    tree_state = "clean" if commit and verified else "archive"
    log("building %s %s (one multi-call binary, cold: 12-20 min) ..." % (BINARY, info["Version"]))
    ldflags = argocd_ldflags(info, go_mod, commit, tree_state)
    seconds = gomodules.go_build(work_dir, ARGOCD_PACKAGE, target, ldflags, None, args.arch)
    record = gomodules.build_record(info, ARGOCD_MODULE, ARGOCD_PACKAGE, args.arch, seconds)
    record.update({
        "toolchain": toolchain,
        "replaced_modules": resolver.resolved,
        # Largest single process of the build (compile or link), not the sum of parallel ones.
        "max_process_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "size_mib": round(os.path.getsize(target) / 2**20, 1),
    })
    build_info["binaries"][BINARY] = record
    return seconds


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Build Argo CD's multi-call binary for linux from the Go module proxy "
                    "into a per-version cache, once.",
        epilog="Output: <cache>/argocd/v<VERSION>/bin/argocd with argocd-application-controller "
               "and argocd-repo-server symlinks, git-verify-wrapper.sh, crds/ and "
               "build-info.json. Example: %(prog)s --version 3.4.4 "
               "--gitops-engine-source ~/src/argo-cd",
    )
    parser.add_argument("--version", default=DEFAULT_VERSION,
                        help="Argo CD release, default %s (the appVersion of argo-cd chart 10.1.1)"
                             % DEFAULT_VERSION)
    parser.add_argument("--gitops-engine-source",
                        default=os.environ.get("PLINTH_ARGOCD_GITOPS_ENGINE_SOURCE"),
                        help="for releases whose gitops-engine is not on the Go module proxy "
                             "(v3.4, v3.5): a directory holding the module, or a git repository "
                             "of argo-cd with the release tag (default: "
                             "$PLINTH_ARGOCD_GITOPS_ENGINE_SOURCE)")
    gomodules.add_build_options(parser)
    return parser.parse_args(argv)


def main(argv=None):
    gomodules.run_tool("build_argocd", parse_args, build, argv)


if __name__ == "__main__":
    main()

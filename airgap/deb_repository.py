#!/usr/bin/env python3
"""Build a signed apt repository in pkgs.k8s.io's layout from locally built binaries.

    python -m airgap.deb_repository --version 1.36.3 --output DIR [--cache DIR] [--arch amd64]

The `nodes` test scenario serves it beside the artifact mirror so that one test host
installs Kubernetes through kubernetes_packages' `repository` source, the way a real
host reads pkgs.k8s.io: a flat repository per minor version,

    DIR/v<major.minor>/deb/{InRelease, Release, Release.key, Packages, Packages.gz, *.deb}

signed by a key made for the repository (kept in DIR/gnupg, reused on later runs).
The packages carry the binaries from airgap/build_kubernetes.py's cache
(${PLINTH_CACHE:-~/.cache/plinth}/kubernetes/v<version>/bin): kubeadm (with the kubeadm
drop-in for kubelet), kubelet (with its unit), kubectl, and cri-tools (crictl). They are
test fixtures with the same names, versions and file locations as the real packages, not
copies of them. Needs dpkg-deb, dpkg-scanpackages and gpg.
"""

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from airgap import cache
from airgap.artifact_mirror import sha256_of  # the same digests as the mirror

REVISION = "1.1"
KEY_NAME = "Plinth test package repository"

KUBELET_UNIT = """\
[Unit]
Description=Kubernetes node agent (test package)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
RestartSec=10
StartLimitInterval=0

[Install]
WantedBy=multi-user.target
"""

KUBEADM_DROPIN = """\
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""

# Let systemd see a unit a package has just installed.
POSTINST_RELOAD = "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def crictl_version(release_dir, minor):
    """cri-tools' own release, as build_kubernetes.py recorded it (else <minor>.0)."""
    try:
        with open(os.path.join(release_dir, "build-info.json"), encoding="utf-8") as handle:
            version = json.load(handle)["binaries"]["crictl"]["version"]
        return version.lstrip("v")
    except (OSError, ValueError, KeyError, TypeError):
        return minor + ".0"


def packages(version, minor, bin_dir, release_dir):
    """name -> (version, depends, {path in package: (source file or text, mode)}, postinst)."""
    tools = crictl_version(release_dir, minor)
    return {
        "kubelet": ("%s-%s" % (version, REVISION), "",
                    {"usr/bin/kubelet": (os.path.join(bin_dir, "kubelet"), 0o755),
                     "usr/lib/systemd/system/kubelet.service": (KUBELET_UNIT, 0o644)}, POSTINST_RELOAD),
        "kubectl": ("%s-%s" % (version, REVISION), "",
                    {"usr/bin/kubectl": (os.path.join(bin_dir, "kubectl"), 0o755)}, None),
        "cri-tools": ("%s-%s" % (tools, REVISION), "",
                      {"usr/bin/crictl": (os.path.join(bin_dir, "crictl"), 0o755)}, None),
        "kubeadm": ("%s-%s" % (version, REVISION), "kubelet (>= 1.19.0), kubectl (>= 1.19.0), cri-tools (>= 1.30.0)",
                    {"usr/bin/kubeadm": (os.path.join(bin_dir, "kubeadm"), 0o755),
                     "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (KUBEADM_DROPIN, 0o644)},
                    POSTINST_RELOAD),
    }


def build_deb(name, pkg_version, depends, files, postinst, arch, out_dir):
    """Build the package unless one built from the same sources is there already."""
    target = os.path.join(out_dir, "%s_%s_%s.deb" % (name, pkg_version, arch))
    stamp = dict((path, sha256_of(source) if source.startswith("/") else hashlib.sha256(source.encode()).hexdigest())
                 for path, (source, _) in files.items())
    stamp["depends"], stamp["postinst"] = depends, postinst
    stamp_file = os.path.join(out_dir, ".%s.sources.json" % name)
    try:
        with open(stamp_file, encoding="utf-8") as handle:
            if os.path.exists(target) and json.load(handle) == stamp:
                return target, False
    except (OSError, ValueError):
        pass
    with tempfile.TemporaryDirectory(prefix="deb-", dir=out_dir) as root:
        for path, (source, mode) in files.items():
            dest = os.path.join(root, path)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if source.startswith("/"):
                shutil.copyfile(source, dest)
            else:
                with open(dest, "w", encoding="utf-8") as handle:
                    handle.write(source)
            os.chmod(dest, mode)
        os.makedirs(os.path.join(root, "DEBIAN"))
        control = ["Package: " + name, "Version: " + pkg_version, "Architecture: " + arch,
                   "Maintainer: Plinth contributors <plinth@example.com>", "Section: admin", "Priority: optional",
                   "Homepage: https://kubernetes.io"]
        if depends:
            control.append("Depends: " + depends)
        control.append("Description: %s (test package built from source)" % name)
        with open(os.path.join(root, "DEBIAN", "control"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(control) + "\n")
        if postinst:
            script = os.path.join(root, "DEBIAN", "postinst")
            with open(script, "w", encoding="utf-8") as handle:
                handle.write(postinst)
            os.chmod(script, 0o755)
        # The binaries are already compressed enough for a test: building stays fast.
        run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", root, target + ".tmp"],
            stdout=subprocess.DEVNULL)
    os.replace(target + ".tmp", target)
    with open(stamp_file, "w", encoding="utf-8") as handle:
        json.dump(stamp, handle, sort_keys=True)
    return target, True


def ensure_key(gnupg):
    os.makedirs(gnupg, mode=0o700, exist_ok=True)
    env = dict(os.environ, GNUPGHOME=gnupg)
    listed = subprocess.run(["gpg", "--batch", "--list-secret-keys", KEY_NAME], env=env,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        run(["gpg", "--batch", "--passphrase", "", "--quick-generate-key", KEY_NAME, "ed25519", "sign", "never"],
            env=env, capture_output=True)
    return env


def write_indexes(repo, arch, env):
    packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=repo, check=True,
                              capture_output=True, text=True).stdout
    with open(os.path.join(repo, "Packages"), "w", encoding="utf-8") as handle:
        handle.write(packages)
    with gzip.GzipFile(os.path.join(repo, "Packages.gz"), "wb", mtime=0) as handle:
        handle.write(packages.encode())
    lines = ["Origin: plinth-test", "Label: plinth-test", "Architectures: %s" % arch,
             "Date: %s" % time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime()), "SHA256:"]
    for name in ("Packages", "Packages.gz"):
        path = os.path.join(repo, name)
        lines.append(" %s %d %s" % (sha256_of(path), os.path.getsize(path), name))
    with open(os.path.join(repo, "Release"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    for name in ("InRelease", "Release.key"):
        if os.path.exists(os.path.join(repo, name)):
            os.unlink(os.path.join(repo, name))
    run(["gpg", "--batch", "--local-user", KEY_NAME, "--clearsign", "--output", "InRelease", "Release"],
        cwd=repo, env=env, capture_output=True)
    run(["gpg", "--batch", "--armor", "--output", "Release.key", "--export", KEY_NAME],
        cwd=repo, env=env, capture_output=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version", required=True, help="Kubernetes release, e.g. 1.36.3")
    parser.add_argument("--output", required=True, help="repository root (served over HTTP)")
    parser.add_argument("--cache", default=cache.root(), help="build cache of airgap/build_kubernetes.py")
    parser.add_argument("--arch", default="amd64", help="Debian architecture of the binaries")
    args = parser.parse_args(argv)

    for tool in ("dpkg-deb", "dpkg-scanpackages", "gpg"):
        if not shutil.which(tool):
            sys.exit("deb_repository: %s is missing (apt-get install dpkg-dev gnupg)" % tool)
    version = args.version.lstrip("v")
    minor = ".".join(version.split(".")[:2])
    release_dir = os.path.join(args.cache, "kubernetes", "v" + version)
    bin_dir = os.path.join(release_dir, "bin")
    output = os.path.abspath(args.output)
    repo = os.path.join(output, "v" + minor, "deb")
    os.makedirs(repo, exist_ok=True)

    built = []
    for name, (pkg_version, depends, files, postinst) in packages(version, minor, bin_dir, release_dir).items():
        missing = [source for source, _ in files.values() if source.startswith("/") and not os.path.exists(source)]
        if missing:
            sys.exit("deb_repository: not built: %s (run airgap/build_kubernetes.py --version %s)"
                     % (", ".join(missing), version))
        path, fresh = build_deb(name, pkg_version, depends, files, postinst, args.arch, repo)
        built.append(fresh)
        print("%-9s %s" % ("built" if fresh else "unchanged", os.path.relpath(path, output)))
    if any(built) or not os.path.exists(os.path.join(repo, "InRelease")):
        write_indexes(repo, args.arch, ensure_key(os.path.join(output, "gnupg")))
        print("wrote     %s/{Packages,Release,InRelease,Release.key}" % os.path.relpath(repo, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())

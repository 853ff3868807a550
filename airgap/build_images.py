#!/usr/bin/env python3
"""Build the images kubeadm deploys as OCI image-layout tarballs, with no registry.

    python -m airgap.build_images --version 1.36.3 [--cache DIR] [--arch amd64] [--images NAME,...]
                    [--extra-images ghcr.io/kube-vip/kube-vip:v1.2.2] [--force]

The image list is kubeadm's own: `kubeadm config images list` of the release
(kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, CoreDNS,
pause, etcd). Each image is one static binary on a small shared base layer:

    kube-*    /usr/local/bin/<name>   kubeadm's manifests name the command
    etcd      /usr/local/bin/etcd     (the release kubeadm deploys, e.g. 3.6.8), with
                                      etcdctl and etcdutl beside it, as upstream
    coredns   /coredns                entrypoint; args come from kubeadm's Deployment
    pause     /pause                  entrypoint; airgap/pause, the sandbox process
    kube-vip  /kube-vip               entrypoint; only with --extra-images (the control
                                      plane's VIP; not in kubeadm's list)

kube-proxy programs the kernel through the iptables commands (or nft), so its
image gets one more layer: Debian's iptables (the plain names point at the nft
backend, Debian 12's default), nftables and the libraries they link, unpacked
from the .deb files `apt-get download` fetches.

The binaries come from airgap/build_kubernetes.py (built when missing), CoreDNS
from its Go module and pause from airgap/pause, all with CGO_ENABLED=0. Every
layer is a tar with sorted entries, mtime 0 and owner root, gzip without a
timestamp, so a rebuild from the same binaries gives the same digests.

Output, once per release, in <cache>/images/v<version>/:

    <image>-<tag>-linux-<arch>.tar   oci-layout, index.json, blobs/sha256/...
    manifest.json                    per image: ref, file, sha256, size, digests, inputs

index.json names each image twice, so that `ctr -n k8s.io images import`
stores it under its full reference (registry.k8s.io/pause:3.10.2): the
containerd annotation io.containerd.image.name holds the reference and the OCI
annotation org.opencontainers.image.ref.name the tag. An image whose inputs
(binaries, packages, this script's layout version) are unchanged is skipped.
airgap/artifact_mirror.py `layout` copies the tarballs into the mirror.
"""

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time

from airgap import artifact_mirror, build_kubernetes, cache, gomodules, launch
from airgap.oci import BuildError, split_reference, write_image

PAUSE_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pause")
# Bump when the image layout changes, so cached images are rebuilt.
LAYOUT_VERSION = 1

COREDNS_MODULE = "github.com/coredns/coredns"
COREDNS_COMMIT_VARIABLE = COREDNS_MODULE + "/coremain.GitCommit"
# Images kubeadm does not list that a control plane may still run, built on request
# (--extra-images) from their Go modules; the module version is the image tag.
KUBE_VIP_MODULE = "github.com/kube-vip/kube-vip"
EXTRA_IMAGES = ("kube-vip",)
KUBERNETES_IMAGES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")

# kube-proxy's iptables mode runs iptables (nft and legacy backends), its nftables mode
# runs nft: both from Debian 12, with every library they link. libc6 is there because
# the image has no distribution under it. (The ipvs mode would also need ipset.)
IPTABLES_PACKAGES = (
    "iptables", "libip4tc2", "libip6tc2", "libxtables12", "libmnl0",
    "libnetfilter-conntrack3", "libnfnetlink0", "libnftnl11",
    "nftables", "libnftables1", "libedit2", "libbsd0", "libmd0", "libtinfo6", "libjansson4",
    "libgmp10",
    "libc6", "libgcc-s1", "netbase",
)
# Debian 12 points these at the nft backend through alternatives, which dpkg-deb -x
# does not run; kube-proxy calls the plain names.
IPTABLES_COMMANDS = ("iptables", "iptables-save", "iptables-restore",
                     "ip6tables", "ip6tables-save", "ip6tables-restore")
# Documentation and translations a container never reads.
UNPACKED_SKIP = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian",
                 "usr/share/locale", "usr/lib/x86_64-linux-gnu/gconv", "usr/lib/aarch64-linux-gnu/gconv")

BASE_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\n"
                  "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
                  "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    "etc/group": "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
    "etc/nsswitch.conf": "hosts: files dns\n",
}
BASE_DIRS = {"etc": 0o755, "home": 0o755, "home/nonroot": 0o700, "root": 0o700, "tmp": 0o1777,
             "usr": 0o755, "usr/local": 0o755, "usr/local/bin": 0o755, "var": 0o755}

log = gomodules.log

sha256_file = artifact_mirror.sha256_of


# --- the image list ---------------------------------------------------------------


def kubeadm_images(kubeadm, version):
    """kubeadm's image references for the release, e.g. registry.k8s.io/etcd:3.6.8-0."""
    result = subprocess.run(
        [kubeadm, "config", "images", "list", "--kubernetes-version", version],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise BuildError("kubeadm config images list failed: %s" % result.stderr.strip())
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def image_file_name(short_name, tag, arch):
    return "%s-%s-linux-%s.tar" % (short_name, tag, arch)


# --- binaries ------------------------------------------------------------------------


def ensure_kubernetes_binaries(args, etcd_version):
    """Build what build_kubernetes.py has not cached yet: kubeadm, the control plane, etcd."""
    bin_dir = os.path.join(args.cache, "kubernetes", args.version, "bin")
    etcd = os.path.join(args.cache, "etcd", "v" + etcd_version, "bin") if etcd_version else None
    names = ("kubeadm",) + KUBERNETES_IMAGES
    missing = [name for name in names if not os.path.exists(os.path.join(bin_dir, name))]
    if etcd and not all(os.path.exists(os.path.join(etcd, name)) for name in build_kubernetes.ETCD_BINARIES):
        missing.append(build_kubernetes.ETCD_BINARY)
    if not missing:
        return bin_dir, etcd
    command = launch.module_command("airgap.build_kubernetes", "--version", args.version[1:], "--cache", args.cache,
                                    "--arch", args.arch, "--no-crictl", "--binaries", ",".join(missing))
    if etcd_version:
        command += ["--etcd-version", etcd_version]
    log("building %s with build_kubernetes.py ..." % ", ".join(missing))
    if subprocess.run(command).returncode != 0:
        raise BuildError("build_kubernetes.py failed for %s" % ", ".join(missing))
    return bin_dir, etcd


def build_module_binary(args, name, module, tag, ldflags_for):
    """A main package at a module's root (no local replaces) into <cache>/<name>/<tag>/bin/<name>.

    ldflags_for(info) gives the version stamps from the module's proxy record.
    """
    release_dir = os.path.join(args.cache, name, tag)
    target = os.path.join(release_dir, "bin", name)
    if os.path.exists(target) and not args.force:
        return target, 0.0
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with gomodules.locked(os.path.join(release_dir, ".lock")):
        info = gomodules.module_info(module, tag)
        if not info:
            raise BuildError("%s %s is not on the Go module proxy" % (module, tag))
        work_dir = os.path.join(release_dir, "work")
        gomodules.prepare_work_module(work_dir, info, [module], gomodules.module_replacements)
        log("building %s %s ..." % (name, tag))
        seconds = gomodules.go_build(work_dir, module, target, ldflags_for(info), None, args.arch)
    return target, seconds


def build_coredns(args, tag):
    return build_module_binary(
        args, "coredns", COREDNS_MODULE, tag,
        lambda info: "-s -w -X '%s=%s'" % (COREDNS_COMMIT_VARIABLE,
                                           gomodules.module_origin(info).get("Hash", "")[:7]))


def build_kube_vip(args, tag):
    return build_module_binary(
        args, "kube-vip", KUBE_VIP_MODULE, tag,
        lambda info: "-s -w -X 'main.Version=%s' -X 'main.Build=%s'" % (
            tag, gomodules.module_origin(info).get("Hash", "")))


def build_pause(args, tag):
    """airgap/pause, cached by the digest of its source so an edit rebuilds it."""
    source = hashlib.sha256()
    for name in sorted(os.listdir(PAUSE_SOURCE)):
        with open(os.path.join(PAUSE_SOURCE, name), "rb") as handle:
            source.update(name.encode() + b"\0" + handle.read())
    target = os.path.join(args.cache, "pause", "%s-%s" % (tag, source.hexdigest()[:12]), "pause")
    if os.path.exists(target) and not args.force:
        return target, 0.0
    os.makedirs(os.path.dirname(target), exist_ok=True)
    ldflags = "-s -w -X 'main.version=%s'" % tag
    # -buildvcs=false: the source sits in a git checkout whose state must not change the binary.
    seconds = gomodules.go_build(PAUSE_SOURCE, ".", target, ldflags, None, args.arch, extra=["-buildvcs=false"])
    return target, seconds


def fetch_iptables_debs(args):
    """The .deb files of IPTABLES_PACKAGES for the arch, downloaded once into the cache."""
    deb_dir = os.path.join(args.cache, "debs", args.arch)
    os.makedirs(deb_dir, exist_ok=True)

    def cached(package):
        return sorted(glob.glob(os.path.join(deb_dir, "%s_*_%s.deb" % (package, args.arch)))
                      + glob.glob(os.path.join(deb_dir, "%s_*_all.deb" % package)))

    missing = [package for package in IPTABLES_PACKAGES if not cached(package)]
    if missing:
        if shutil.which("apt-get") is None:
            raise BuildError("kube-proxy's iptables layer needs apt-get (Debian 12) to fetch %s"
                             % ", ".join(missing))
        log("downloading %s ..." % ", ".join(missing))
        with tempfile.TemporaryDirectory(dir=deb_dir) as scratch:
            result = subprocess.run(["apt-get", "download", "-q"]
                                    + ["%s:%s" % (package, args.arch) for package in missing],
                                    cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True)
            if result.returncode != 0:
                raise BuildError("apt-get download failed:\n%s" % result.stdout)
            for name in os.listdir(scratch):
                os.replace(os.path.join(scratch, name), os.path.join(deb_dir, name))
    debs = []
    for package in IPTABLES_PACKAGES:
        found = cached(package)
        if len(found) != 1:
            raise BuildError("%s: expected one %s .deb, found %s" % (deb_dir, package, found or "none"))
        debs.append(found[0])
    return debs


# --- layers --------------------------------------------------------------------------


def base_entries():
    entries = [(path, "dir", mode, None) for path, mode in BASE_DIRS.items()]
    entries += [(path, "file", 0o644, text.encode()) for path, text in BASE_FILES.items()]
    return entries


def binary_entries(binary, destination):
    """The binary at destination (e.g. usr/local/bin/etcd) and the directories above it."""
    entries, parent = [], os.path.dirname(destination)
    while parent and parent not in BASE_DIRS:
        entries.append((parent, "dir", 0o755, None))
        parent = os.path.dirname(parent)
    return entries + [(destination, "file", 0o755, binary)]


def unpacked_entries(debs, scratch):
    """The files of the .debs (dpkg-deb -x), without docs, plus the iptables command links."""
    root = os.path.join(scratch, "root")
    os.makedirs(root)
    for deb in debs:
        result = subprocess.run(["dpkg-deb", "-x", deb, root], stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise BuildError("dpkg-deb -x %s failed: %s" % (deb, result.stderr.strip()))
    entries = []
    for directory, dirs, files in os.walk(root):
        relative_dir = os.path.relpath(directory, root)
        for name in dirs + files:
            path = os.path.normpath(os.path.join(relative_dir, name))
            full = os.path.join(root, path)
            if any(path == skip or path.startswith(skip + "/") for skip in UNPACKED_SKIP):
                continue
            if os.path.islink(full):
                entries.append((path, "symlink", 0o777, os.readlink(full)))
            elif os.path.isdir(full):
                entries.append((path, "dir", os.stat(full).st_mode & 0o7777, None))
            else:
                entries.append((path, "file", os.stat(full).st_mode & 0o7777, full))
    present = {entry[0] for entry in entries}
    for command in IPTABLES_COMMANDS:
        link = "usr/sbin/" + command
        if link in present:
            raise BuildError("%s is in the packages already; expected only %s-nft" % (link, command))
        if "usr/sbin/" + nft_variant(command) not in present:
            raise BuildError("the iptables package has no usr/sbin/%s" % nft_variant(command))
        entries.append((link, "symlink", 0o777, nft_variant(command)))
    return [entry for entry in entries if entry[0] not in BASE_DIRS]


def nft_variant(command):
    """iptables-save -> iptables-nft-save, ip6tables -> ip6tables-nft."""
    family, _, action = command.partition("-")
    return "%s-nft-%s" % (family, action) if action else family + "-nft"


# --- the plan: what each image is made of --------------------------------------------


def image_plan(args, reference, binaries):
    """(layers, entrypoint, inputs) for one kubeadm image reference."""
    _, tag, short = split_reference(reference)
    base = ("base: directories, passwd, group", base_entries())
    if short in KUBERNETES_IMAGES:
        binary = os.path.join(binaries["kubernetes"], short)
        layers = [base, ("%s %s at /usr/local/bin" % (short, tag),
                         binary_entries(binary, "usr/local/bin/" + short))]
        inputs = {short: sha256_file(binary)}
        if short == "kube-proxy":
            debs = fetch_iptables_debs(args)
            names = [os.path.basename(deb) for deb in debs]
            layers.insert(1, ("iptables (nft), nftables from " + ", ".join(names),
                              lambda scratch: unpacked_entries(debs, scratch)))
            inputs["debs"] = names
        return layers, ["/usr/local/bin/" + short], inputs
    if short == "etcd":
        names = sorted(build_kubernetes.ETCD_BINARIES)
        paths = dict((name, os.path.join(binaries["etcd"], name)) for name in names)
        entries = binary_entries(paths["etcd"], "usr/local/bin/etcd")
        entries += [("usr/local/bin/" + name, "file", 0o755, paths[name]) for name in names if name != "etcd"]
        return ([base, ("%s %s at /usr/local/bin" % (", ".join(names), tag), entries)],
                ["/usr/local/bin/etcd"], dict((name, sha256_file(path)) for name, path in paths.items()))
    if short == "coredns":
        binary = binaries["coredns"]
        return ([base, ("coredns %s at /coredns" % tag, binary_entries(binary, "coredns"))],
                ["/coredns"], {"coredns": sha256_file(binary)})
    if short == "pause":
        binary = binaries["pause"]
        return ([base, ("pause (airgap/pause) at /pause", binary_entries(binary, "pause"))],
                ["/pause"], {"pause": sha256_file(binary)})
    if short == "kube-vip":
        binary = binaries["kube-vip"]
        return ([base, ("kube-vip %s at /kube-vip" % tag, binary_entries(binary, "kube-vip"))],
                ["/kube-vip"], {"kube-vip": sha256_file(binary)})
    raise BuildError("kubeadm lists %r, which this script does not know how to build" % reference)


def materialise(layers, scratch):
    """Layers whose entries are made late (unpacked packages) get them now, in scratch."""
    return [(description, entries(tempfile.mkdtemp(dir=scratch)) if callable(entries) else entries)
            for description, entries in layers]


def load_manifest(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {"images": []}


def save_manifest(path, manifest):
    manifest["images"].sort(key=lambda entry: (entry["ref"], entry["arch"]))
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".tmp", path)


def cached_entry(manifest, reference, arch, inputs, image_dir):
    for entry in manifest["images"]:
        if entry["ref"] == reference and entry["arch"] == arch:
            path = os.path.join(image_dir, entry["file"])
            fresh = entry.get("inputs") == inputs and os.path.exists(path) \
                and os.path.getsize(path) == entry["size"]
            return entry if fresh else None
    return None


def build(args):
    references = kubeadm_images(ensure_kubeadm(args), args.version)
    if args.images:
        unknown = sorted(set(args.images) - {split_reference(ref)[2] for ref in references})
        if unknown:
            raise BuildError("--images: kubeadm %s lists no %s; it lists %s" % (
                args.version, ", ".join(unknown), ", ".join(split_reference(r)[2] for r in references)))
        references = [ref for ref in references if split_reference(ref)[2] in args.images]
    for extra in args.extra_images:
        if split_reference(extra)[2] not in EXTRA_IMAGES:
            raise BuildError("--extra-images: %r is none of %s" % (extra, ", ".join(EXTRA_IMAGES)))
    references += args.extra_images
    tags = {split_reference(ref)[2]: split_reference(ref)[1] for ref in references}

    timings = {}
    etcd_version = tags["etcd"].split("-")[0] if "etcd" in tags else None
    kubernetes_bin, etcd = ensure_kubernetes_binaries(args, etcd_version)
    binaries = {"kubernetes": kubernetes_bin, "etcd": etcd}
    if "coredns" in tags:
        binaries["coredns"], timings["coredns binary"] = build_coredns(args, tags["coredns"])
    if "pause" in tags:
        binaries["pause"], timings["pause binary"] = build_pause(args, tags["pause"])
    if "kube-vip" in tags:
        binaries["kube-vip"], timings["kube-vip binary"] = build_kube_vip(args, tags["kube-vip"])

    image_dir = os.path.join(args.cache, "images", args.version)
    os.makedirs(image_dir, exist_ok=True)
    manifest_path = os.path.join(image_dir, "manifest.json")
    with gomodules.locked(os.path.join(image_dir, ".lock")):
        for name in os.listdir(image_dir):
            if name.startswith(".") and name != ".lock":
                remove_partial(os.path.join(image_dir, name))
        manifest = load_manifest(manifest_path)
        manifest["kubernetes_version"] = args.version
        for reference in references:
            timings[reference] = build_one(args, reference, binaries, manifest, image_dir)
            save_manifest(manifest_path, manifest)
    report(timings, manifest, references, args.arch, image_dir)


def ensure_kubeadm(args):
    """kubeadm of the release, which names the images; built first when missing."""
    kubeadm = os.path.join(args.cache, "kubernetes", args.version, "bin", "kubeadm")
    if not os.path.exists(kubeadm):
        ensure_kubernetes_binaries(args, None)
    return kubeadm


def remove_partial(path):
    """What a killed build left (temporary files and directories); only called under the lock."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def build_one(args, reference, binaries, manifest, image_dir):
    name, tag, short = split_reference(reference)
    layers, entrypoint, inputs = image_plan(args, reference, binaries)
    inputs["layout"] = LAYOUT_VERSION
    if not args.force and cached_entry(manifest, reference, args.arch, inputs, image_dir):
        log("%-48s already built, skipped" % reference)
        return None
    started = time.monotonic()
    file_name = image_file_name(short, tag, args.arch)
    with tempfile.TemporaryDirectory(prefix=".unpack.", dir=image_dir) as scratch:
        manifest_digest, config_digest = write_image(
            os.path.join(image_dir, file_name), reference, args.arch,
            materialise(layers, scratch), entrypoint)
    path = os.path.join(image_dir, file_name)
    manifest["images"] = [entry for entry in manifest["images"]
                          if not (entry["ref"] == reference and entry["arch"] == args.arch)]
    manifest["images"].append({
        "ref": reference, "name": name, "tag": tag, "os": "linux", "arch": args.arch,
        "file": file_name, "sha256": sha256_file(path), "size": os.path.getsize(path),
        "manifest_digest": manifest_digest, "config_digest": config_digest, "inputs": inputs,
    })
    return time.monotonic() - started


def report(timings, manifest, references, arch, image_dir):
    for label, seconds in timings.items():
        if seconds:
            entry = next((e for e in manifest["images"] if e["ref"] == label and e["arch"] == arch), None)
            size = " %6.1f MiB" % (entry["size"] / 2**20) if entry else ""
            log("built %-48s %6.1f s%s" % (label, seconds, size))
    for entry in manifest["images"]:
        if entry["ref"] in references and entry["arch"] == arch:
            log("%s  %s  %s" % (entry["sha256"][:12], entry["manifest_digest"][:19], entry["ref"]))
    log("images in %s" % image_dir)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Build the images kubeadm deploys (control plane, kube-proxy, CoreDNS, pause, "
                    "etcd) as OCI image-layout tarballs, once per release.",
        epilog="Output: <cache>/images/v<VERSION>/<image>-<tag>-linux-<arch>.tar and manifest.json. "
               "Load one with: ctr -n k8s.io images import <tarball>.")
    parser.add_argument("--version", required=True, help="Kubernetes release, e.g. 1.36.3")
    parser.add_argument("--cache", default=cache.root(),
                        help="cache root (default: $PLINTH_CACHE or ~/.cache/plinth)")
    parser.add_argument("--arch", default="amd64", help="GOARCH to build for (default amd64)")
    parser.add_argument("--images", type=lambda text: [i.strip() for i in text.split(",") if i.strip()],
                        help="comma-separated subset by short name (kube-apiserver, etcd, coredns, "
                             "pause, ...); default: every image kubeadm lists")
    parser.add_argument("--extra-images", default=[],
                        type=lambda text: [i.strip() for i in text.split(",") if i.strip()],
                        help="comma-separated references of images kubeadm does not list, built "
                             "too; supported: %s (e.g. ghcr.io/kube-vip/kube-vip:v1.2.2, "
                             "the tag is the Go module version)" % ", ".join(EXTRA_IMAGES))
    parser.add_argument("--force", action="store_true", help="rebuild images already in the cache")
    args = parser.parse_args(argv)
    args.version = "v%d.%d.%d" % gomodules.parse_version(args.version)
    args.cache = os.path.abspath(os.path.expanduser(args.cache))
    return args


def main(argv=None):
    gomodules.run_tool("build_images", parse_args, build, argv, errors=(BuildError,))


if __name__ == "__main__":
    main()

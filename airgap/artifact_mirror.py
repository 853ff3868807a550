#!/usr/bin/env python3
"""Lay out and serve the artifact mirror that kubernetes_packages (and cni_bridge) install from.

`layout` copies built binaries from the build cache (airgap/build_kubernetes.py)
into the directory tree an air-gapped site hosts over HTTP:

    <mirror>/kubernetes/v<version>/bin/linux/<arch>/<binary>
    <mirror>/kubernetes/v<version>/bin/linux/<arch>/<binary>.sha256
    <mirror>/kubernetes/v<version>/SHA256SUMS
    <mirror>/kubernetes/v<version>/manifest.json

the CNI plugins of the cni_bridge role's pod network, when built with
`airgap/build_kubernetes.py --binaries cni-plugins`, in a folder of their own
release:

    <mirror>/cni-plugins/v<version>/bin/linux/<arch>/<plugin>
    <mirror>/cni-plugins/v<version>/bin/linux/<arch>/<plugin>.sha256
    <mirror>/cni-plugins/v<version>/SHA256SUMS
    <mirror>/cni-plugins/v<version>/manifest.json

and, when airgap/build_images.py has built them, the images kubeadm deploys as
OCI image-layout tarballs that container_runtime preloads into containerd:

    <mirror>/images/v<version>/<image>-<tag>-linux-<arch>.tar
    <mirror>/images/v<version>/SHA256SUMS
    <mirror>/images/v<version>/manifest.json

`serve` runs a static HTTP server over that tree in the background (optionally
inside a network namespace) and writes a pid file; `stop` ends it.
docs/air-gapped.md describes the layout and how the role consumes it.
"""

import argparse
import hashlib
import http.server
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

from airgap import launch, processes
from airgap.cache import root as cache_root

OS_NAME = "linux"
KUBERNETES = "kubernetes"
CNI_PLUGINS = "cni-plugins"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path, data):
    """Replace path's content with data unless it already has it; True if written."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == data:
                return False
    except OSError:
        pass
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return True


def copy_atomic(source, target, mode=0o755):
    """Copy source to target unless target already has the same bytes; True if copied."""
    if os.path.exists(target) and os.path.getsize(target) == os.path.getsize(source):
        if sha256_of(target) == sha256_of(source):
            return False
    tmp = "%s.tmp.%d" % (target, os.getpid())
    shutil.copyfile(source, tmp)
    os.chmod(tmp, mode)
    os.replace(tmp, target)
    return True


def normalise_version(text):
    return text if text.startswith("v") else "v" + text


def load_build_info(release_dir):
    try:
        with open(os.path.join(release_dir, "build-info.json"), encoding="utf-8") as handle:
            return json.load(handle).get("binaries", {})
    except (OSError, ValueError):
        return {}


def built_binaries(cache_bin):
    return sorted(name for name in os.listdir(cache_bin)
                  if not name.startswith(".") and os.path.isfile(os.path.join(cache_bin, name)))


def layout(args):
    version = normalise_version(args.version)
    release_dir = os.path.join(args.cache, KUBERNETES, version)
    cache_bin = os.path.join(release_dir, "bin")
    if not os.path.isdir(cache_bin):
        sys.exit("artifact_mirror: no build for %s in %s (run airgap/build_kubernetes.py "
                 "--version %s first)" % (version, cache_bin, version[1:]))
    available = built_binaries(cache_bin)
    names = args.binaries or available
    missing = sorted(set(names) - set(available))
    if missing:
        sys.exit("artifact_mirror: not built for %s: %s" % (version, ", ".join(missing)))
    layout_release(args, KUBERNETES, version, release_dir, names)
    if not args.no_cni_plugins:
        layout_cni_plugins(args)
    if not args.no_images:
        layout_images(args, version)


def layout_release(args, product, version, release_dir, names):
    """Copy the named binaries of one cached release to <mirror>/<product>/<version>/, then index it."""
    built = load_build_info(release_dir)
    version_dir = os.path.join(args.mirror, product, version)
    arch_dir = os.path.join(version_dir, "bin", OS_NAME, args.arch)
    os.makedirs(arch_dir, exist_ok=True)
    for name in names:
        if built.get(name, {}).get("arch", args.arch) != args.arch:
            sys.exit("artifact_mirror: %s in the cache was built for %s, not %s"
                     % (name, built[name]["arch"], args.arch))
        target = os.path.join(arch_dir, name)
        copied = copy_atomic(os.path.join(release_dir, "bin", name), target)
        write_atomic(target + ".sha256", sha256_of(target) + "\n")
        print("%-9s %s" % ("copied" if copied else "unchanged", os.path.relpath(target, args.mirror)))
    write_indexes(args.mirror, product, version, built)


def layout_cni_plugins(args):
    """Every CNI plugins release in the cache, or the one --cni-plugins names (which must be built)."""
    cache_root = os.path.join(args.cache, CNI_PLUGINS)
    if args.cni_plugins:
        versions = [normalise_version(args.cni_plugins)]
    elif os.path.isdir(cache_root):
        versions = sorted(name for name in os.listdir(cache_root)
                          if os.path.isdir(os.path.join(cache_root, name, "bin")))
    else:
        versions = []
    if not versions:
        print("no CNI plugins built (airgap/build_kubernetes.py --binaries cni-plugins): none laid out")
    for version in versions:
        release_dir = os.path.join(cache_root, version)
        cache_bin = os.path.join(release_dir, "bin")
        names = built_binaries(cache_bin) if os.path.isdir(cache_bin) else []
        if not names:
            sys.exit("artifact_mirror: no CNI plugins %s in %s (run airgap/build_kubernetes.py "
                     "--binaries cni-plugins --cni-plugins-version %s first)" % (version, cache_bin, version))
        layout_release(args, CNI_PLUGINS, version, release_dir, names)


def load_image_manifest(image_cache):
    try:
        with open(os.path.join(image_cache, "manifest.json"), encoding="utf-8") as handle:
            return json.load(handle).get("images", [])
    except OSError:
        return None
    except ValueError as error:
        sys.exit("artifact_mirror: %s/manifest.json is not JSON: %s" % (image_cache, error))


def wanted_image(entry, names):
    """An image is named by its reference or its last path component (kube-apiserver, etcd)."""
    return not names or entry["ref"] in names or entry["name"].rsplit("/", 1)[-1] in names


def layout_images(args, version):
    """Copy the image tarballs of the release and arch, then index every image the mirror holds."""
    image_cache = os.path.join(args.cache, "images", version)
    built = load_image_manifest(image_cache)
    if built is None:
        if args.images:
            sys.exit("artifact_mirror: no images built for %s in %s (run airgap/build_images.py "
                     "--version %s first)" % (version, image_cache, version[1:]))
        print("no images built for %s (airgap/build_images.py): none laid out" % version)
        return
    chosen = [entry for entry in built
              if entry["arch"] == args.arch and wanted_image(entry, args.images)]
    missing = sorted(set(args.images or ()) - {entry["ref"] for entry in chosen}
                     - {entry["name"].rsplit("/", 1)[-1] for entry in chosen})
    if missing:
        sys.exit("artifact_mirror: no %s image built for %s: %s" % (args.arch, version, ", ".join(missing)))
    image_dir = os.path.join(args.mirror, "images", version)
    os.makedirs(image_dir, exist_ok=True)
    for entry in chosen:
        source = os.path.join(image_cache, entry["file"])
        if sha256_of(source) != entry["sha256"]:
            sys.exit("artifact_mirror: %s does not match the sha256 in its manifest.json; "
                     "rebuild it with airgap/build_images.py --force" % source)
        target = os.path.join(image_dir, entry["file"])
        copied = copy_atomic(source, target, mode=0o644)
        print("%-9s %s" % ("copied" if copied else "unchanged", os.path.relpath(target, args.mirror)))
    write_image_indexes(args.mirror, image_dir, version, built)


def write_image_indexes(mirror, image_dir, version, built):
    """SHA256SUMS and manifest.json over the tarballs in the mirror (every arch laid out so far)."""
    present = set(os.listdir(image_dir))
    entries = []
    for entry in sorted(built, key=lambda item: (item["ref"], item["arch"])):
        if entry["file"] not in present:
            continue
        public = {key: value for key, value in entry.items() if key != "inputs"}
        public["path"] = "images/%s/%s" % (version, entry["file"])
        entries.append(public)
    sums = "".join("%s  %s\n" % (entry["sha256"], entry["file"]) for entry in entries)
    write_index_files(mirror, image_dir, sums, {"kubernetes_version": version, "images": entries})


def mirrored_binaries(version_dir):
    """(relative path, arch, name) for every binary of every arch under version_dir."""
    root = os.path.join(version_dir, "bin", OS_NAME)
    for arch in sorted(os.listdir(root)):
        for name in sorted(os.listdir(os.path.join(root, arch))):
            if name.endswith(".sha256") or ".tmp." in name:
                continue
            yield "bin/%s/%s/%s" % (OS_NAME, arch, name), arch, name


def write_indexes(mirror, product, version, built):
    """SHA256SUMS and manifest.json over everything in <product>/<version>, all arches."""
    version_dir = os.path.join(mirror, product, version)
    sums, entries = [], []
    for relative, arch, name in mirrored_binaries(version_dir):
        path = os.path.join(version_dir, relative)
        digest = sha256_of(path)
        sums.append("%s  %s\n" % (digest, relative))
        entries.append({
            "name": name,
            "version": built.get(name, {}).get("version", version),
            "os": OS_NAME,
            "arch": arch,
            "sha256": digest,
            "size": os.path.getsize(path),
            "path": "%s/%s/%s" % (product, version, relative),
        })
    # "kubernetes_version", "cni_plugins_version": the release the folder holds.
    manifest = {"%s_version" % product.replace("-", "_"): version, "artifacts": entries}
    write_index_files(mirror, version_dir, "".join(sums), manifest)


def write_index_files(mirror, directory, sums, manifest):
    """SHA256SUMS and manifest.json of one mirror folder, each rewritten only when it changed."""
    indexes = {"SHA256SUMS": sums,
               "manifest.json": json.dumps(manifest, indent=2, sort_keys=True) + "\n"}
    for name, content in indexes.items():
        path = os.path.join(directory, name)
        written = write_atomic(path, content)
        print("%-9s %s" % ("wrote" if written else "unchanged", os.path.relpath(path, mirror)))


def parse_address(text):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return host.strip("[]"), int(port)


def read_pid(pid_file):
    try:
        with open(pid_file, encoding="utf-8") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_our_server(pid):
    """The pid is alive and is this script's server (pids get reused)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    return b"airgap.artifact_mirror" in argv and b"serve" in argv


def serve(args):
    if not os.path.isdir(args.mirror):
        sys.exit("artifact_mirror: mirror directory %s does not exist (run layout first)"
                 % args.mirror)
    pid = read_pid(args.pid_file)
    if pid and is_our_server(pid):
        sys.exit("artifact_mirror: already serving (pid %d, %s)" % (pid, args.pid_file))
    if args.foreground:
        run_server(args)
        return
    command = launch.module_command("airgap.artifact_mirror", "--mirror", args.mirror,
                                    "--pid-file", args.pid_file, "serve", "--foreground",
                                    "--address", format_address(args.address), "--log-file", args.log_file)
    if args.netns:
        command = ["ip", "netns", "exec", args.netns] + command
    os.makedirs(os.path.dirname(args.pid_file), exist_ok=True)
    if os.path.exists(args.pid_file):
        os.unlink(args.pid_file)
    with open(args.log_file, "ab") as log:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)
    # The server writes the pid file once it is bound, so its presence means ready.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if child.poll() is not None:
            sys.exit("artifact_mirror: server exited with %d; see %s"
                     % (child.returncode, args.log_file))
        if read_pid(args.pid_file):
            where = " in netns %s" % args.netns if args.netns else ""
            print("serving %s on http://%s/%s (pid %d, log %s)"
                  % (args.mirror, format_address(args.address), where, child.pid, args.log_file))
            return
        time.sleep(0.1)
    child.terminate()
    sys.exit("artifact_mirror: server did not start within 10 s; see %s" % args.log_file)


def format_address(address):
    host, port = address
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


class MirrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler):
        family = socket.AF_INET
        try:
            if ipaddress.ip_address(address[0]).version == 6:
                family = socket.AF_INET6
        except ValueError:
            pass
        self.address_family = family
        super().__init__(address, handler)


def run_server(args):
    directory = os.path.abspath(args.mirror)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *handler_args, **kwargs):
            super().__init__(*handler_args, directory=directory, **kwargs)

        def log_message(self, fmt, *fmt_args):
            sys.stderr.write("%s %s\n" % (self.log_date_time_string(), fmt % fmt_args))
            sys.stderr.flush()

    server = MirrorServer(args.address, Handler)
    write_atomic(args.pid_file, "%d\n" % os.getpid())
    try:
        processes.serve_until_stopped(server, "serving %s on %s" % (directory, format_address(args.address)))
    finally:
        if read_pid(args.pid_file) == os.getpid():
            os.unlink(args.pid_file)


def stop(args):
    pid = read_pid(args.pid_file)
    if not pid or not is_our_server(pid):
        print("not running (%s)" % args.pid_file)
        if os.path.exists(args.pid_file):
            os.unlink(args.pid_file)
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and is_our_server(pid):
        time.sleep(0.1)
    if is_our_server(pid):
        sys.exit("artifact_mirror: pid %d did not stop within 10 s" % pid)
    if os.path.exists(args.pid_file):
        os.unlink(args.pid_file)
    print("stopped pid %d" % pid)


def parse_args(argv):
    cache = cache_root()
    parser = argparse.ArgumentParser(
        description="Lay out the Kubernetes artifact mirror from the build cache, and serve it.",
        epilog="Layout: <mirror>/kubernetes/v<VERSION>/bin/linux/<ARCH>/<BINARY> (+ .sha256), "
               "<mirror>/kubernetes/v<VERSION>/SHA256SUMS and manifest.json; the same under "
               "<mirror>/cni-plugins/v<CNI VERSION>/ for the CNI plugins; "
               "<mirror>/images/v<VERSION>/<IMAGE>-<TAG>-linux-<ARCH>.tar, SHA256SUMS and manifest.json. "
               "See docs/air-gapped.md.")
    parser.add_argument("--mirror", default=os.path.join(cache, "mirror"),
                        help="mirror root (default: $PLINTH_CACHE/mirror or ~/.cache/plinth/mirror)")
    parser.add_argument("--pid-file", default=os.path.join(cache, "run", "artifact-mirror.pid"),
                        help="server pid file (default: <cache>/run/artifact-mirror.pid)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    lay = commands.add_parser("layout", help="copy built binaries, CNI plugins and images into the mirror, "
                                             "write SHA256SUMS and manifest.json")
    lay.add_argument("--version", required=True, help="Kubernetes release, e.g. 1.36.3")
    lay.add_argument("--cache", default=cache,
                     help="build cache root (default: $PLINTH_CACHE or ~/.cache/plinth)")
    lay.add_argument("--arch", default="amd64", help="architecture the binaries were built for")
    lay.add_argument("--binaries", type=lambda text: [b for b in text.split(",") if b],
                     help="comma-separated subset (default: every binary in the cache)")
    lay.add_argument("--images", type=lambda text: [i for i in text.split(",") if i],
                     help="comma-separated image subset, by reference or short name (e.g. "
                          "etcd,pause); default: every image airgap/build_images.py built, if any")
    lay.add_argument("--cni-plugins", metavar="VERSION",
                     help="CNI plugins release to copy, e.g. v1.9.1 (default: every release "
                          "airgap/build_kubernetes.py --binaries cni-plugins built, if any)")
    lay.add_argument("--no-cni-plugins", action="store_true", help="copy no CNI plugins")
    lay.add_argument("--no-images", action="store_true", help="copy no images")
    lay.set_defaults(func=layout)

    srv = commands.add_parser("serve", help="serve the mirror over HTTP in the background")
    srv.add_argument("--address", type=parse_address, default=("127.0.0.1", 8088),
                     help="HOST:PORT to listen on (default 127.0.0.1:8088)")
    srv.add_argument("--netns", help="run the server inside this network namespace "
                                     "(re-executes under `ip netns exec NAME`)")
    srv.add_argument("--log-file", help="server log (default: beside the pid file)")
    srv.add_argument("--foreground", action="store_true", help="do not detach")
    srv.set_defaults(func=serve)

    stp = commands.add_parser("stop", help="stop the server named by the pid file")
    stp.set_defaults(func=stop)

    args = parser.parse_args(argv)
    args.mirror = os.path.abspath(os.path.expanduser(args.mirror))
    args.pid_file = os.path.abspath(os.path.expanduser(args.pid_file))
    if getattr(args, "cache", None):
        args.cache = os.path.abspath(os.path.expanduser(args.cache))
    if args.command == "serve" and not args.log_file:
        args.log_file = os.path.splitext(args.pid_file)[0] + ".log"
    return args


def main(argv=None):
    args = parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

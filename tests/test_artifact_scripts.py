"""The binary build's go.mod generation and the artifact mirror, without Go or a network."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import urllib.request

import pytest

from airgap import artifact_mirror, build_kubernetes, gomodules, launch

KUBERNETES_GO_MOD = """\
// generated
module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require (
\tgithub.com/example/dep v1.2.3
\tk8s.io/api v0.0.0
\tk8s.io/unpublished v0.0.0 // indirect
)

require k8s.io/client-go v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/unpublished => ./staging/src/k8s.io/unpublished
\tk8s.io/not-required => ./staging/src/k8s.io/not-required
\tgithub.com/example/dep => github.com/fork/dep v1.2.4
)
"""


@pytest.fixture
def kubernetes_mod(tmp_path):
    path = tmp_path / "kubernetes.mod"
    path.write_text(KUBERNETES_GO_MOD)
    return gomodules.read_go_mod(str(path))


def test_read_go_mod_collects_blocks_and_single_lines(kubernetes_mod):
    assert kubernetes_mod["go"] == "1.26.0"
    assert kubernetes_mod["godebug"] == ["default=go1.26"]
    assert kubernetes_mod["require"] == {
        "github.com/example/dep": "v1.2.3", "k8s.io/api": "v0.0.0",
        "k8s.io/unpublished": "v0.0.0", "k8s.io/client-go": "v0.0.0"}
    assert ("k8s.io/api", "./staging/src/k8s.io/api") in kubernetes_mod["replace"]


def test_staging_modules_point_at_their_published_release(kubernetes_mod, tmp_path, monkeypatch):
    published = {"k8s.io/api", "k8s.io/client-go"}
    monkeypatch.setattr(gomodules, "module_info",
                        lambda module, version: {"Version": version} if module in published else None)
    replaces, stubs = build_kubernetes.staging_replacements(
        kubernetes_mod, "v0.36.3", str(tmp_path / "stubs"))
    stub_dir = tmp_path / "stubs" / "k8s.io" / "unpublished"
    assert replaces == [
        "k8s.io/api => k8s.io/api v0.36.3",
        "k8s.io/client-go => k8s.io/client-go v0.36.3",
        "k8s.io/unpublished => %s" % stub_dir,
        "github.com/example/dep => github.com/fork/dep v1.2.4",
    ]
    assert stubs == ["k8s.io/unpublished"]
    assert (stub_dir / "go.mod").read_text() == "module k8s.io/unpublished\n"


def test_work_module_requires_the_release_and_repeats_go_settings(kubernetes_mod, tmp_path):
    gomodules.write_work_module(str(tmp_path), "k8s.io/kubernetes", "v1.36.3",
                                       kubernetes_mod, ["k8s.io/api => k8s.io/api v0.36.3"])
    text = (tmp_path / "go.mod").read_text()
    assert text == ("module plinth.build/kubernetes\n\ngo 1.26.0\n\ngodebug default=go1.26\n\n"
                    "require k8s.io/kubernetes v1.36.3\n\n"
                    "replace (\n\tk8s.io/api => k8s.io/api v0.36.3\n)\n")


def test_plain_module_with_local_replace_is_refused():
    go_mod = {"replace": [("example.com/a", "./a")]}
    with pytest.raises(gomodules.BuildError, match="example.com/a"):
        gomodules.module_replacements(go_mod)


def test_ldflags_stamp_both_version_packages(tmp_path):
    info_file = tmp_path / "v1.36.3.info"
    info_file.write_text(json.dumps({"Version": "v1.36.3", "Time": "2026-07-22T18:07:38Z"}))
    flags = build_kubernetes.kubernetes_ldflags({"Version": "v1.36.3", "Info": str(info_file)},
                                                (1, 36, 3))
    assert flags.startswith("-s -w ")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (("gitVersion", "v1.36.3"), ("gitMajor", "1"), ("gitMinor", "36"),
                           ("gitTreeState", "archive"), ("gitCommit", ""),
                           ("buildDate", "2026-07-22T18:07:38Z")):
            assert "-X '%s.%s=%s'" % (package, key, value) in flags


@pytest.mark.parametrize("text", ["1.36", "v1.36.3-rc.0", "latest"])
def test_version_must_be_a_release(text):
    with pytest.raises(gomodules.BuildError, match="MAJOR.MINOR.PATCH"):
        gomodules.parse_version(text)


def fake_go_build(built):
    """Stands in for go_build: writes the target and records the package and ldflags."""
    def go_build(work_dir, package, target, ldflags, tags, arch, extra=()):
        with open(target, "w") as handle:
            handle.write(package)
        built.append((package, ldflags, arch))
        return 0.5
    return go_build


@pytest.fixture
def no_go(monkeypatch):
    """module_info, the work module and go build without Go or a network; returns the builds made."""
    built = []
    monkeypatch.setattr(gomodules, "module_info",
                        lambda module, version: {"Path": module, "Version": version}
                        if module == build_kubernetes.CNI_PLUGINS_MODULE else None)
    monkeypatch.setattr(gomodules, "prepare_work_module",
                        lambda work_dir, info, packages, replaces_for: built.append(("prepare", packages)))
    monkeypatch.setattr(gomodules, "go_build", fake_go_build(built))
    monkeypatch.setattr(gomodules, "go_version", lambda: "go1.26.8")
    return built


def cni_args(cache, *extra):
    return build_kubernetes.parse_args(["--version", "1.36.3", "--binaries", "cni-plugins",
                                        "--cache", str(cache)] + list(extra))


def test_cni_plugins_are_built_once_per_version_with_the_release_stamp(no_go, tmp_path):
    bin_dir, timings = build_kubernetes.build_cni_plugins_release(cni_args(tmp_path))
    assert bin_dir == str(tmp_path / "cni-plugins" / "v1.9.1" / "bin")
    assert sorted(os.listdir(bin_dir)) == ["bridge", "host-local", "loopback", "portmap"]
    module = "github.com/containernetworking/plugins"
    packages = [module + "/plugins/main/bridge", module + "/plugins/ipam/host-local",
                module + "/plugins/main/loopback", module + "/plugins/meta/portmap"]
    assert no_go[0] == ("prepare", packages)
    assert [package for package, _, _ in no_go[1:]] == packages
    assert all(ldflags == "-s -w -X '%s/pkg/utils/buildversion.BuildVersion=v1.9.1'" % module
               for _, ldflags, _ in no_go[1:])
    assert [name for name, _ in timings] == ["bridge", "host-local", "loopback", "portmap"]
    info = json.loads((tmp_path / "cni-plugins" / "v1.9.1" / "build-info.json").read_text())
    assert info["cni_plugins_version"] == "v1.9.1"
    assert info["binaries"]["portmap"] == {
        "version": "v1.9.1", "module": module, "package": module + "/plugins/meta/portmap",
        "go": "go1.26.8", "arch": "amd64", "build_seconds": 0.5}

    del no_go[:]
    os.unlink(os.path.join(bin_dir, "loopback"))
    _, timings = build_kubernetes.build_cni_plugins_release(cni_args(tmp_path))
    assert [name for name, _ in timings] == ["loopback"]
    assert [package for package, _, _ in no_go[1:]] == [module + "/plugins/main/loopback"]
    assert set(json.loads((tmp_path / "cni-plugins" / "v1.9.1" / "build-info.json").read_text())["binaries"]) \
        == {"bridge", "host-local", "loopback", "portmap"}


def test_cni_plugins_version_is_pinned_and_can_be_changed(no_go, tmp_path):
    bin_dir, _ = build_kubernetes.build_cni_plugins_release(
        cni_args(tmp_path, "--cni-plugins-version", "1.9.2", "--arch", "arm64"))
    assert bin_dir == str(tmp_path / "cni-plugins" / "v1.9.2" / "bin")
    assert {arch for _, _, arch in no_go[1:]} == {"arm64"}
    with pytest.raises(gomodules.BuildError, match="--cni-plugins-version 'latest'"):
        build_kubernetes.build_cni_plugins_release(cni_args(tmp_path, "--cni-plugins-version", "latest"))


def test_unknown_binary_names_the_cni_plugins_target(tmp_path, monkeypatch):
    monkeypatch.setattr(build_kubernetes.shutil, "which", lambda name: "/usr/bin/go")
    args = build_kubernetes.parse_args(["--version", "1.36.3", "--binaries", "kubeadm,flannel",
                                        "--cache", str(tmp_path)])
    with pytest.raises(gomodules.BuildError, match="unknown flannel; supported: .*etcd, cni-plugins"):
        build_kubernetes.build(args)


CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")


@pytest.fixture
def cache(tmp_path):
    bin_dir = tmp_path / "cache" / "kubernetes" / "v1.36.3" / "bin"
    bin_dir.mkdir(parents=True)
    for name, content in (("kubeadm", b"kubeadm-bytes"), ("crictl", b"crictl-bytes")):
        (bin_dir / name).write_bytes(content)
    (bin_dir.parent / "build-info.json").write_text(json.dumps(
        {"binaries": {"crictl": {"version": "v1.36.0", "arch": "amd64"}}}))
    cni_bin = tmp_path / "cache" / "cni-plugins" / "v1.9.1" / "bin"
    cni_bin.mkdir(parents=True)
    for name in CNI_PLUGINS:
        (cni_bin / name).write_bytes(name.encode() + b"-plugin")
    (cni_bin / ".bridge.partial").write_bytes(b"half")
    (cni_bin.parent / "build-info.json").write_text(json.dumps(
        {"cni_plugins_version": "v1.9.1",
         "binaries": {name: {"version": "v1.9.1", "arch": "amd64"} for name in CNI_PLUGINS}}))
    return tmp_path / "cache"


def run_mirror(*args):
    return subprocess.run(launch.module_command("airgap.artifact_mirror")
                          + list(args), capture_output=True, text=True, check=True).stdout


def test_layout_writes_binaries_checksums_and_manifest(cache, tmp_path):
    mirror = tmp_path / "mirror"
    first = run_mirror("--mirror", str(mirror), "layout", "--version", "1.36.3",
                       "--cache", str(cache))
    version_dir = mirror / "kubernetes" / "v1.36.3"
    digest = hashlib.sha256(b"kubeadm-bytes").hexdigest()
    assert (version_dir / "bin/linux/amd64/kubeadm").read_bytes() == b"kubeadm-bytes"
    assert (version_dir / "bin/linux/amd64/kubeadm.sha256").read_text() == digest + "\n"
    assert "%s  bin/linux/amd64/kubeadm\n" % digest in (version_dir / "SHA256SUMS").read_text()
    manifest = json.loads((version_dir / "manifest.json").read_text())
    entries = {entry["name"]: entry for entry in manifest["artifacts"]}
    assert entries["kubeadm"] == {"name": "kubeadm", "version": "v1.36.3", "os": "linux",
                                  "arch": "amd64", "sha256": digest, "size": 13,
                                  "path": "kubernetes/v1.36.3/bin/linux/amd64/kubeadm"}
    assert entries["crictl"]["version"] == "v1.36.0"
    assert "copied" in first
    assert_layout_again_changes_nothing(mirror, cache, version_dir)


def assert_layout_again_changes_nothing(mirror, cache, release_dir):
    """A second layout copies and writes nothing, and the release folder checks against its SHA256SUMS."""
    second = run_mirror("--mirror", str(mirror), "layout", "--version", "1.36.3",
                        "--cache", str(cache))
    assert "copied" not in second and "wrote" not in second
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=release_dir, check=True)


def test_layout_puts_the_cni_plugins_in_a_folder_of_their_release(cache, tmp_path):
    mirror = tmp_path / "mirror"
    first = run_mirror("--mirror", str(mirror), "layout", "--version", "1.36.3",
                       "--cache", str(cache))
    cni_dir = mirror / "cni-plugins" / "v1.9.1"
    assert "copied    cni-plugins/v1.9.1/bin/linux/amd64/bridge" in first
    assert sorted(os.listdir(cni_dir / "bin/linux/amd64")) == sorted(
        list(CNI_PLUGINS) + [name + ".sha256" for name in CNI_PLUGINS])
    sums = (cni_dir / "SHA256SUMS").read_text()
    assert sums == "".join("%s  bin/linux/amd64/%s\n" % (hashlib.sha256(name.encode() + b"-plugin").hexdigest(), name)
                           for name in CNI_PLUGINS)
    manifest = json.loads((cni_dir / "manifest.json").read_text())
    assert manifest["cni_plugins_version"] == "v1.9.1"
    assert [entry["path"] for entry in manifest["artifacts"]] == [
        "cni-plugins/v1.9.1/bin/linux/amd64/%s" % name for name in CNI_PLUGINS]
    assert {entry["version"] for entry in manifest["artifacts"]} == {"v1.9.1"}
    # The Kubernetes release's indexes list only its own binaries.
    kubernetes_sums = (mirror / "kubernetes" / "v1.36.3" / "SHA256SUMS").read_text()
    assert "bridge" not in kubernetes_sums and "bin/linux/amd64/kubeadm" in kubernetes_sums
    assert_layout_again_changes_nothing(mirror, cache, cni_dir)


def test_layout_of_cni_plugins_can_be_chosen_or_left_out(cache, tmp_path):
    mirror = tmp_path / "mirror"
    run_mirror("--mirror", str(mirror), "layout", "--version", "1.36.3", "--cache", str(cache),
               "--no-cni-plugins")
    assert not (mirror / "cni-plugins").exists()
    missing = subprocess.run(launch.module_command("airgap.artifact_mirror") + [
                              "--mirror", str(mirror), "layout", "--version", "1.36.3",
                              "--cache", str(cache), "--cni-plugins", "1.8.0"],
                             capture_output=True, text=True)
    assert missing.returncode != 0
    assert "no CNI plugins v1.8.0" in missing.stderr and "--cni-plugins-version v1.8.0" in missing.stderr
    chosen = run_mirror("--mirror", str(mirror), "layout", "--version", "1.36.3", "--cache", str(cache),
                        "--cni-plugins", "1.9.1")
    assert "cni-plugins/v1.9.1/SHA256SUMS" in chosen


def test_layout_without_cni_plugins_built_says_so(cache, tmp_path):
    shutil.rmtree(str(cache / "cni-plugins"))
    out = run_mirror("--mirror", str(tmp_path / "mirror"), "layout", "--version", "1.36.3",
                     "--cache", str(cache))
    assert "no CNI plugins built" in out
    assert not (tmp_path / "mirror" / "cni-plugins").exists()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_and_stop(cache, tmp_path):
    mirror = tmp_path / "mirror"
    pid_file = tmp_path / "run" / "mirror.pid"
    common = ["--mirror", str(mirror), "--pid-file", str(pid_file)]
    run_mirror(*common, "layout", "--version", "1.36.3", "--cache", str(cache))
    port = free_port()
    run_mirror(*common, "serve", "--address", "127.0.0.1:%d" % port)
    try:
        url = "http://127.0.0.1:%d/kubernetes/v1.36.3/bin/linux/amd64/kubeadm" % port
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read() == b"kubeadm-bytes"
        assert artifact_mirror.is_our_server(artifact_mirror.read_pid(str(pid_file)))
    finally:
        stopped = run_mirror(*common, "stop")
    assert stopped.startswith("stopped pid")
    assert not pid_file.exists()

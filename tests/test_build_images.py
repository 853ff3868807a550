"""The OCI image tarballs of airgap/build_images.py and their place in the artifact mirror.

No Go, network or containerd here: the images are made from small stand-in files, and what
is checked is the format containerd reads (the real import runs in the molecule `nodes`
scenario).
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest

from airgap import build_images, launch

REFERENCE = "registry.k8s.io/etcd:3.6.8-0"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "etcd"
    path.write_bytes(b"\x7fELF stand-in for etcd")
    path.chmod(0o755)
    return str(path)


def make_image(binary, directory):
    layers = [("base", build_images.base_entries()),
              ("etcd", build_images.binary_entries(binary, "usr/local/bin/etcd"))]
    target = os.path.join(str(directory), "etcd.tar")
    digests = build_images.write_image(target, REFERENCE, "amd64", layers, ["/usr/local/bin/etcd"])
    return target, digests


def read_layout(target):
    with tarfile.open(target) as tar:
        return {member.name: (member, tar.extractfile(member).read() if member.isfile() else None)
                for member in tar.getmembers()}


def test_image_is_an_oci_layout_named_for_containerd(binary, tmp_path):
    target, (manifest_digest, config_digest) = make_image(binary, tmp_path)
    files = read_layout(target)
    assert json.loads(files["oci-layout"][1]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"][1])
    [descriptor] = index["manifests"]
    assert descriptor["annotations"] == {"io.containerd.image.name": REFERENCE,
                                         "org.opencontainers.image.ref.name": "3.6.8-0"}
    assert descriptor["platform"] == {"architecture": "amd64", "os": "linux"}
    assert descriptor["digest"] == manifest_digest
    blobs = {name.rsplit("/", 1)[-1]: data for name, (_, data) in files.items()
             if name.startswith("blobs/sha256/") and data is not None}
    # Every blob is stored under its own digest.
    assert all(sha256(data) == digest for digest, data in blobs.items())
    manifest = json.loads(blobs[manifest_digest.split(":")[1]])
    assert descriptor["size"] == len(blobs[manifest_digest.split(":")[1]])
    assert manifest["config"]["digest"] == config_digest
    config = json.loads(blobs[config_digest.split(":")[1]])
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/etcd"]
    assert any(env.startswith("PATH=") and "/usr/local/bin" in env for env in config["config"]["Env"])
    # diff_ids are the digests of the uncompressed layers, in order.
    layers = [gzip.decompress(blobs[layer["digest"].split(":")[1]]) for layer in manifest["layers"]]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + sha256(layer) for layer in layers]
    with tarfile.open(fileobj=io.BytesIO(layers[1])) as tar:
        etcd = tar.getmember("usr/local/bin/etcd")
        assert etcd.mode == 0o755 and tar.extractfile(etcd).read() == b"\x7fELF stand-in for etcd"


def test_etcd_image_carries_etcdctl_and_etcdutl(tmp_path):
    """As upstream's image does: the etcd backup runs them inside the etcd container."""
    for name in ("etcd", "etcdctl", "etcdutl"):
        (tmp_path / name).write_bytes(b"\x7fELF stand-in for " + name.encode())
    layers, entrypoint, inputs = build_images.image_plan(None, REFERENCE, {"etcd": str(tmp_path)})
    assert entrypoint == ["/usr/local/bin/etcd"]
    assert sorted(inputs) == ["etcd", "etcdctl", "etcdutl"]
    target = os.path.join(str(tmp_path), "etcd.tar")
    build_images.write_image(target, REFERENCE, "amd64", layers, entrypoint)
    layout = read_layout(target)
    index = json.loads(layout["index.json"][1])
    manifest = json.loads(layout["blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]][1])
    binaries = manifest["layers"][-1]["digest"].split(":")[1]
    with tarfile.open(fileobj=io.BytesIO(layout["blobs/sha256/" + binaries][1])) as layer:
        files = dict((m.name, (m.mode, layer.extractfile(m).read())) for m in layer.getmembers() if m.isfile())
    assert files == dict(("usr/local/bin/" + name, (0o755, b"\x7fELF stand-in for " + name.encode()))
                         for name in ("etcd", "etcdctl", "etcdutl"))


def test_layers_are_deterministic(binary, tmp_path):
    first_dir, second_dir = tmp_path / "one", tmp_path / "two"
    first_dir.mkdir()
    second_dir.mkdir()
    os.utime(binary, (1, 1))
    first, first_digests = make_image(binary, first_dir)
    os.utime(binary, (2_000_000_000, 2_000_000_000))
    second, second_digests = make_image(binary, second_dir)
    assert first_digests == second_digests
    with open(first, "rb") as one, open(second, "rb") as two:
        assert one.read() == two.read()
    for member, _ in read_layout(first).values():
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")


def test_base_layer_is_shared_by_every_image(binary, tmp_path):
    scheduler = tmp_path / "kube-scheduler"
    scheduler.write_bytes(b"scheduler")
    first_layers = []
    for name, path in (("etcd", binary), ("kube-scheduler", str(scheduler))):
        target = str(tmp_path / (name + ".tar"))
        build_images.write_image(target, "registry.k8s.io/%s:v1" % name, "amd64",
                                 [("base", build_images.base_entries()),
                                  (name, build_images.binary_entries(path, "usr/local/bin/" + name))],
                                 None)
        files = read_layout(target)
        index = json.loads(files["index.json"][1])
        manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]][1])
        first_layers.append(manifest["layers"][0]["digest"])
    # containerd stores (and a node downloads) the base layer once for all images.
    assert first_layers[0] == first_layers[1]


@pytest.mark.parametrize("command, target", [
    ("iptables", "iptables-nft"), ("iptables-save", "iptables-nft-save"),
    ("ip6tables-restore", "ip6tables-nft-restore")])
def test_iptables_commands_point_at_the_nft_backend(command, target):
    assert build_images.nft_variant(command) == target


@pytest.mark.parametrize("reference, expected", [
    ("registry.k8s.io/coredns/coredns:v1.14.2", ("registry.k8s.io/coredns/coredns", "v1.14.2", "coredns")),
    ("registry.k8s.io/pause:3.10.2", ("registry.k8s.io/pause", "3.10.2", "pause"))])
def test_split_reference(reference, expected):
    assert build_images.split_reference(reference) == expected


def test_reference_without_a_tag_is_refused():
    with pytest.raises(build_images.BuildError, match="expected NAME:TAG"):
        build_images.split_reference("registry.k8s.io/pause")


@pytest.fixture
def image_cache(tmp_path, binary):
    cache = tmp_path / "cache"
    bin_dir = cache / "kubernetes" / "v1.36.3" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "kubeadm").write_bytes(b"kubeadm-bytes")
    image_dir = cache / "images" / "v1.36.3"
    image_dir.mkdir(parents=True)
    target, (manifest_digest, config_digest) = make_image(binary, image_dir)
    os.rename(target, image_dir / "etcd-3.6.8-0-linux-amd64.tar")
    data = (image_dir / "etcd-3.6.8-0-linux-amd64.tar").read_bytes()
    entry = {"ref": REFERENCE, "name": "registry.k8s.io/etcd", "tag": "3.6.8-0", "os": "linux",
             "arch": "amd64", "file": "etcd-3.6.8-0-linux-amd64.tar", "sha256": sha256(data),
             "size": len(data), "manifest_digest": manifest_digest, "config_digest": config_digest,
             "inputs": {"etcd": "x", "layout": 1}}
    (image_dir / "manifest.json").write_text(json.dumps({"images": [entry]}))
    return cache


def layout(*args):
    return subprocess.run(launch.module_command("airgap.artifact_mirror")
                          + list(args), capture_output=True, text=True)


def test_layout_carries_the_images(image_cache, tmp_path):
    mirror = tmp_path / "mirror"
    first = layout("--mirror", str(mirror), "layout", "--version", "1.36.3", "--cache", str(image_cache))
    assert first.returncode == 0, first.stderr
    image_dir = mirror / "images" / "v1.36.3"
    data = (image_dir / "etcd-3.6.8-0-linux-amd64.tar").read_bytes()
    assert (image_dir / "SHA256SUMS").read_text() == "%s  etcd-3.6.8-0-linux-amd64.tar\n" % sha256(data)
    [entry] = json.loads((image_dir / "manifest.json").read_text())["images"]
    assert entry["path"] == "images/v1.36.3/etcd-3.6.8-0-linux-amd64.tar"
    assert entry["ref"] == REFERENCE and entry["sha256"] == sha256(data) and "inputs" not in entry
    subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=image_dir, check=True)
    second = layout("--mirror", str(mirror), "layout", "--version", "1.36.3", "--cache", str(image_cache))
    assert "copied" not in second.stdout and "wrote" not in second.stdout


def test_layout_refuses_an_image_that_is_not_built(image_cache, tmp_path):
    result = layout("--mirror", str(tmp_path / "mirror"), "layout", "--version", "1.36.3",
                    "--cache", str(image_cache), "--images", "etcd,coredns")
    assert result.returncode != 0 and "no amd64 image built for v1.36.3: coredns" in result.stderr


def test_layout_refuses_a_tarball_that_does_not_match_its_manifest(image_cache, tmp_path):
    with open(image_cache / "images" / "v1.36.3" / "etcd-3.6.8-0-linux-amd64.tar", "ab") as tarball:
        tarball.write(b"tampered")
    result = layout("--mirror", str(tmp_path / "mirror"), "layout", "--version", "1.36.3",
                    "--cache", str(image_cache))
    assert result.returncode != 0 and "does not match the sha256" in result.stderr


def test_layout_without_images(image_cache, tmp_path):
    mirror = tmp_path / "mirror"
    result = layout("--mirror", str(mirror), "layout", "--version", "1.36.3", "--cache", str(image_cache),
                    "--no-images")
    assert result.returncode == 0 and not (mirror / "images").exists()

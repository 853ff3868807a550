"""Commands that start one of this repository's tools in a new process.

The tools are modules of packages at the repository root, so a child process needs that root
on its import path whatever its working directory (a daemon, a command run inside a network
namespace, an ssh ProxyCommand): the command carries it in PYTHONPATH.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_path():
    """PYTHONPATH with the repository root first, whatever the caller had kept after it."""
    rest = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry and entry != ROOT]
    return os.pathsep.join([ROOT] + rest)


def module_command(module, *args):
    """argv that runs ``python -m module args...`` with this interpreter."""
    return ["env", "PYTHONPATH=" + import_path(), sys.executable, "-m", module] + list(args)


def ensure_built(find, tool, version, cache, what, error):
    """What ``find(version, cache)`` finds, after running build tool ``tool`` when it finds nothing.

    ``what`` names the build in messages ("Argo CD v3.6.2, a cold build takes 12-20 minutes");
    ``error`` is the exception class to raise when the build fails or leaves it missing.
    """
    found = find(version, cache)
    if found:
        return found
    print("building %s" % what, file=sys.stderr, flush=True)
    command = module_command(tool, "--version", version, "--cache", cache)
    if subprocess.call(command) != 0:
        raise error("building %s failed: %s" % (what.split(",")[0], " ".join(command)))
    found = find(version, cache)
    if not found:
        raise error("%s still missing after the build in %s" % (what.split(",")[0], cache))
    return found

"""Commands that start one of this repository's tools in a new process.

The tools are modules of packages at the repository root, so a child process needs that root
on its import path whatever its working directory (a daemon, a command run inside a network
namespace, an ssh ProxyCommand): the command carries it in PYTHONPATH.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def import_path():
    """PYTHONPATH with the repository root first, whatever the caller had kept after it."""
    rest = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry and entry != ROOT]
    return os.pathsep.join([ROOT] + rest)


def module_command(module, *args):
    """argv that runs ``python -m module args...`` with this interpreter."""
    return ["env", "PYTHONPATH=" + import_path(), sys.executable, "-m", module] + list(args)

"""What every part of the test-host tool shares: its messages, the commands it runs, the
files it writes, and the state directory that records everything a run made.
"""

import fcntl
import json
import os
import shlex
import subprocess
import sys


def log(msg):
    print("testhosts: %s" % msg, file=sys.stderr, flush=True)


def die(msg):
    sys.exit("testhosts: error: %s" % msg)


def run(cmd, check=True, quiet=False, **kw):
    if not quiet:
        log("$ " + " ".join(shlex.quote(c) for c in cmd))
    return subprocess.run(cmd, check=check, **kw)


def write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


STATE_FILE = "state.json"


# ---------------------------------------------------------------------------- state


class State:
    def __init__(self, path):
        self.dir = os.path.abspath(path)
        self.file = os.path.join(self.dir, STATE_FILE)
        self.key = os.path.join(self.dir, "id_ed25519")
        self.inventory = os.path.join(self.dir, "inventory.yml")

    def host_dir(self, name):
        return os.path.join(self.dir, "hosts", name)

    def load(self):
        try:
            with open(self.file) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def save(self, data):
        os.makedirs(self.dir, exist_ok=True)
        with open(self.file + ".part", "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.rename(self.file + ".part", self.file)

    def lock(self):
        os.makedirs(self.dir, exist_ok=True)
        handle = open(os.path.join(self.dir, ".lock"), "w")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

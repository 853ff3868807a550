"""Background processes a tool starts and another process stops: the test control plane,
the chart mirror, the operators' stand-ins and Argo CD each remember theirs in
DIR/state.json, and a pid counts as theirs only while its kernel start time matches.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

STATE_FILE = "state.json"
STOP_TIMEOUT = 15


def free_port():
    # The kernel's pick for an ephemeral port; it stays free long enough to hand on.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_start_time(pid):
    """The kernel's start time of ``pid`` (clock ticks since boot); None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19])


def is_ours(entry):
    # A pid alone could have been reused by an unrelated process since `up`.
    return process_start_time(entry["pid"]) == entry["start_time"]


def start_process(name, command, log_dir, env=None):
    log_path = os.path.join(log_dir, name + ".log")
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    return {"name": name, "pid": process.pid, "start_time": process_start_time(process.pid),
            "log": log_path, "command": command}


def stop_processes(entries, timeout=STOP_TIMEOUT):
    """Stop each process group we started, newest first: etcd goes last, so the
    API server shuts down cleanly instead of retrying a vanished etcd."""
    for entry in reversed(entries):
        if not is_ours(entry):
            continue
        _signal_group(entry["pid"], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and is_ours(entry):
            _reap([entry])
            time.sleep(0.05)
        if is_ours(entry):
            _signal_group(entry["pid"], signal.SIGKILL)
            time.sleep(0.1)
            _reap([entry])


def _signal_group(pid, signum):
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _reap(entries):
    # Children of this process linger as zombies (and keep their pid) until waited for.
    for entry in entries:
        try:
            os.waitpid(entry["pid"], os.WNOHANG)
        except ChildProcessError:
            pass


def tail(path, lines=20):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])
    except OSError:
        return ""


class Service:
    """Processes a test starts in the background, remembered in DIR/state.json (written
    atomically) so that another process can stop them; a context manager that starts
    and stops them. Subclasses set ``self.dir`` and define ``start`` and ``stop``."""

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def state_path(self):
        return os.path.join(self.dir, STATE_FILE)

    def state(self):
        try:
            with open(self.state_path, encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return None

    def _save(self, state):
        with open(self.state_path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
        os.replace(self.state_path + ".tmp", self.state_path)

    def stop_recorded(self):
        """Stop every process the state records and keep only those still alive; their names, if any."""
        state = self.state()
        if not state:
            return []
        stop_processes(state["processes"])
        state["processes"] = [e for e in state["processes"] if is_ours(e)]
        self._save(state)
        return ["%s (pid %d)" % (e["name"], e["pid"]) for e in state["processes"]]


def serve_until_stopped(server, banner):
    """Serve in the foreground until SIGTERM or Ctrl-C, then close the listening socket."""
    def stop(_signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(banner + "\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

#!/usr/bin/env python3
"""A Helm chart repository on loopback that serves the stand-in charts, for tests that
cannot download upstream charts.

    python -m airgap.chart_mirror up --dir DIR [--charts molecule/gitops/charts] [--port 0]
                                          package the charts, serve them, print the URL
    python -m airgap.chart_mirror status --dir DIR      process, URL, charts
    python -m airgap.chart_mirror down --dir DIR        stop the server

`up` packages the generic stand-in chart (CHARTS/stand-in) once per entry of
CHARTS/charts.yml, under that entry's name and version, into DIR/repo, indexes it for
http://127.0.0.1:<port> and serves DIR/repo from a detached process (its pid and start
time in DIR/state.json, its log in DIR/server.log). Run again, it repackages into the
running repository and prints the same URL.

From Python (tests):

    with ChartMirror(path) as mirror:
        subprocess.run([helm, "repo", "add", "mirror", mirror.url])
"""

import argparse
import copy
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

from airgap import launch, processes

ROOT = launch.ROOT

DEFAULT_CHARTS = os.path.join(ROOT, "molecule", "gitops", "charts")
TABLE = "charts.yml"
SOURCE = "stand-in"
READY_TIMEOUT = 10


class MirrorError(Exception):
    pass


def default_helm():
    venv_helm = os.path.join(ROOT, ".venv", "bin", "helm")
    return os.environ.get("HELM") or (venv_helm if os.access(venv_helm, os.X_OK) else shutil.which("helm"))


def load_table(charts_dir):
    """The entries of CHARTS/charts.yml: [{name, version, app_version, standIn}]."""
    path = os.path.join(charts_dir, TABLE)
    with open(path, encoding="utf-8") as handle:
        entries = (yaml.safe_load(handle) or {}).get("charts") or []
    seen = set()
    for index, entry in enumerate(entries):
        where = "%s: charts[%d]" % (path, index)
        for key in ("name", "version"):
            # An unquoted 1.10 would reach us as the float 1.1.
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise MirrorError("%s.%s: %r is not a non-empty string (quote versions)"
                                  % (where, key, entry.get(key)))
        if not isinstance(entry.get("standIn", {}), dict):
            raise MirrorError("%s.standIn: %r is not a mapping" % (where, entry["standIn"]))
        if (entry["name"], entry["version"]) in seen:
            raise MirrorError("%s: %s %s is listed twice" % (where, entry["name"], entry["version"]))
        seen.add((entry["name"], entry["version"]))
    return entries


def _dump(path, document, comment):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("# %s\n---\n" % comment)
        handle.write(yaml.safe_dump(document, sort_keys=False, default_flow_style=False))


def stage_chart(source, entry, target):
    """Copy the stand-in chart to ``target`` as the chart ``entry`` describes."""
    shutil.copytree(source, target)
    _dump(os.path.join(target, "Chart.yaml"), {
        "apiVersion": "v2",
        "name": entry["name"],
        "description": "Test stand-in for the %s chart (Plinth)" % entry["name"],
        "type": "application",
        "version": entry["version"],
        "appVersion": entry.get("app_version", "stand-in"),
    }, "Written by airgap/chart_mirror.py from charts.yml.")
    values_path = os.path.join(target, "values.yaml")
    with open(values_path, encoding="utf-8") as handle:
        values = yaml.safe_load(handle)
    values["standIn"].update(copy.deepcopy(entry.get("standIn") or {}))
    _dump(values_path, values, "The stand-in chart's defaults with this chart's standIn from charts.yml "
          "(documented in stand-in/values.yaml).")


def package(charts_dir, repo, url, helm):
    """Package every chart of the table into ``repo`` and index it for ``url``.

    Files are replaced one by one and index.yaml last, so a running server never serves a
    half-written repository."""
    entries = load_table(charts_dir)
    os.makedirs(repo, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="chart-mirror-", dir=os.path.dirname(repo)) as work:
        sources, built = [], os.path.join(work, "built")
        for entry in entries:
            target = os.path.join(work, "src", "%s-%s" % (entry["name"], entry["version"]))
            stage_chart(os.path.join(charts_dir, SOURCE), entry, target)
            sources.append(target)
        _helm(helm, ["package", "--destination", built] + sources)
        _helm(helm, ["repo", "index", built, "--url", url])
        packages = sorted(name for name in os.listdir(built) if name.endswith(".tgz"))
        for name in packages:
            os.replace(os.path.join(built, name), os.path.join(repo, name))
        for name in os.listdir(repo):
            if name.endswith(".tgz") and name not in packages:
                os.unlink(os.path.join(repo, name))
        os.replace(os.path.join(built, "index.yaml"), os.path.join(repo, "index.yaml"))
    return entries


def _helm(helm, args):
    if not helm:
        raise MirrorError("helm not found (set HELM, or install it into .venv/bin)")
    result = subprocess.run([helm] + args, capture_output=True, text=True, check=False)
    if result.returncode:
        raise MirrorError("helm %s failed (%d): %s" % (args[0], result.returncode, result.stderr.strip()))


# --- the server ------------------------------------------------------------------------

def serve(repo, fd):
    """Serve ``repo`` on the listening socket ``fd`` that `up` bound and handed over."""
    sock = socket.socket(fileno=fd)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=repo)
    server = http.server.ThreadingHTTPServer(sock.getsockname(), handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_name, server.server_port = sock.getsockname()[:2]
    server.daemon_threads = True
    processes.serve_until_stopped(
        server, "serving %s on http://%s:%d" % (repo, server.server_name, server.server_port))


class ChartMirror(processes.Service):
    """The stand-in chart repository whose files all live under ``directory``."""

    def __init__(self, directory, charts=DEFAULT_CHARTS, port=0, helm=None):
        self.dir = os.path.abspath(directory)
        self.charts = os.path.abspath(charts)
        self.port = port
        self.helm = helm or default_helm()
        self.repo = os.path.join(self.dir, "repo")
        self.log = os.path.join(self.dir, "server.log")

    def _running(self):
        state = self.state()
        if state and state.get("process") and processes.is_ours(state["process"]):
            return state
        return None

    @property
    def url(self):
        state = self._running()
        if not state:
            raise MirrorError("no chart mirror running from %s (run up first)" % self.dir)
        return state["url"]

    def start(self):
        """Package the charts and serve them; the URL. A running mirror is repackaged in place."""
        started = time.monotonic()
        os.makedirs(self.dir, exist_ok=True)
        state = self._running()
        if state:
            entries = package(self.charts, self.repo, state["url"], self.helm)
        else:
            with self._listen() as sock:
                url = "http://127.0.0.1:%d" % sock.getsockname()[1]
                entries = package(self.charts, self.repo, url, self.helm)
                state = {"url": url, "repo": self.repo, "log": self.log, "process": self._spawn(sock)}
        state["charts"] = ["%s-%s" % (e["name"], e["version"]) for e in entries]
        self._save(state)
        self._wait_ready(state)
        state["up_seconds"] = round(time.monotonic() - started, 2)
        self._save(state)
        return state["url"]

    def _listen(self):
        # Bound here, so the port (0: the kernel's pick) is known before index.yaml is written
        # and no other process can take it in between; the server inherits the socket.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
        except OSError as error:
            sock.close()
            raise MirrorError("cannot listen on 127.0.0.1:%d: %s" % (self.port, error)) from error
        return sock

    def _spawn(self, sock):
        command = launch.module_command("airgap.chart_mirror", "serve", "--dir", self.dir, "--fd", str(sock.fileno()))
        with open(self.log, "ab") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       pass_fds=(sock.fileno(),), start_new_session=True)
        return {"name": "chart-mirror", "pid": process.pid,
                "start_time": processes.process_start_time(process.pid), "command": command}

    def _wait_ready(self, state):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(state["url"] + "/index.yaml", timeout=2) as response:
                    response.read()
                return
            except (OSError, urllib.error.URLError) as error:
                if time.monotonic() > deadline or not processes.is_ours(state["process"]):
                    self.stop()
                    raise MirrorError("chart mirror not serving %s (%s); see %s"
                                      % (state["url"], error, self.log)) from error
                time.sleep(0.1)

    def stop(self):
        state = self.state()
        if not state or not state.get("process"):
            return
        processes.stop_processes([state["process"]])
        if processes.is_ours(state["process"]):
            raise MirrorError("chart mirror still running (pid %d)" % state["process"]["pid"])
        state["process"] = None
        self._save(state)

    def status(self):
        state = self._running()
        if not state:
            return {"running": False}
        return {"running": True, "url": state["url"], "pid": state["process"]["pid"],
                "repo": state["repo"], "log": state["log"], "charts": state.get("charts", [])}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Serve the stand-in Helm charts on 127.0.0.1, for tests.")
    parser.add_argument("command", choices=("up", "down", "status", "serve"),
                        help="serve: the foreground server that up starts")
    parser.add_argument("--dir", required=True, help="the mirror's directory (repo/, state.json, server.log)")
    parser.add_argument("--charts", default=DEFAULT_CHARTS,
                        help="directory with charts.yml and the stand-in chart (default %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    mirror = ChartMirror(args.dir, args.charts, args.port)
    try:
        if args.command == "serve":
            if args.fd is None:
                parser.error("serve runs under up, which passes it a bound socket (--fd)")
            serve(mirror.repo, args.fd)
        elif args.command == "up":
            print(mirror.start())
        elif args.command == "down":
            mirror.stop()
            print("stopped")
        else:
            status = mirror.status()
            print(json.dumps(status, indent=2, sort_keys=True))
            return 0 if status["running"] else 1
    except MirrorError as error:
        sys.exit("chart_mirror: %s" % error)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A real External Secrets Operator controller against a test cluster, for tests.

    python -m testbed.external_secrets up --dir DIR --kubeconfig ADMIN.conf [--version 0.20.4]
    python -m testbed.external_secrets status --dir DIR
    python -m testbed.external_secrets down --dir DIR

`up` applies the release's CRDs (external-secrets.io and generators.external-secrets.io)
with server-side apply, waits until every one is Established, and starts the controller
(the binary's root command) with the kubeconfig's credentials. What the chart runs beside
it is left out, since nothing here needs it: the validating webhook and the
cert-controller that feeds it certificates are separate commands of the same binary
(`webhook`, `certcontroller`), and the controller itself registers no webhook, so it
starts no webhook server. Leader election is off (its default), and the metrics and
liveness servers bind free ports on 127.0.0.1 (their defaults, :8080 and :8082, are on
every address). `up` returns once /healthz answers and the ExternalSecret controller has
started its workers (its caches have synced), and prints the ports. `down` stops the
process; state.json in DIR has its pid (and start time, so a reused pid is never
signalled), the log is DIR/logs/external-secrets.log.

From Python (tests):

    with TestExternalSecrets(path, cluster.admin_conf) as eso:
        cluster.api.request("POST", "/apis/external-secrets.io/v1/namespaces/demo/secretstores", store)

The binary and CRDs come from airgap/build_external_secrets.py's cache
(${PLINTH_CACHE:-~/.cache/plinth}/external-secrets/v<version>/); `up` builds them when
missing (6-10 minutes cold).
"""

import argparse
import json
import os
import sys
import time
import urllib.request

from airgap import build_external_secrets, launch, processes
from airgap.cache import root as cache_root
from testbed import argocd_api, testcluster

DEFAULT_VERSION = build_external_secrets.DEFAULT_VERSION
READY_TIMEOUT = 120
CRD_TIMEOUT = 60
CONTROLLER = "external-secrets"
FIELD_MANAGER = "plinth-testbed-external-secrets"
# controller-runtime logs this once a controller's caches have synced; ESO's reconciler of
# ExternalSecrets is the one that writes Secrets.
WORKERS_STARTED = ("Starting workers", '"controller":"externalsecret"')


class ExternalSecretsError(Exception):
    pass


def log(message):
    print("external_secrets: %s" % message, file=sys.stderr, flush=True)


# --- binary and CRDs ---------------------------------------------------------------

def find_build(version, cache):
    """Binary and CRD paths of a complete build, or None."""
    root = build_external_secrets.release_dir(cache, version)
    binary = os.path.join(root, "bin", build_external_secrets.BINARY)
    crd_dir = os.path.join(root, "crds")
    if not os.access(binary, os.X_OK) or not os.path.isdir(crd_dir):
        return None
    crds = sorted(os.path.join(crd_dir, name) for name in os.listdir(crd_dir) if name.endswith(".yaml"))
    if not crds:
        return None
    return {"binary": binary, "crds": crds}


def ensure_build(version, cache):
    return launch.ensure_built(find_build, "airgap.build_external_secrets", version, cache,
                               "External Secrets %s, a cold build takes 6-10 minutes" % version,
                               ExternalSecretsError)


def apply_crds(api, crd_paths, timeout=CRD_TIMEOUT):
    """Server-side apply each CRD (the SecretStore ones are 580 kB, too big for client-side
    apply's annotation); returns their names once every one is Established."""
    names = []
    for path in crd_paths:
        with open(path, "rb") as handle:
            body = handle.read()
        name = argocd_api.crd_name(body, path)
        argocd_api.raw_request(api, "PATCH", "%s/%s" % (argocd_api.CRD_GROUP_PATH, name), body,
                               "application/apply-patch+yaml",
                               "?fieldManager=%s&force=true" % FIELD_MANAGER)
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while not argocd_api.crd_established(api, name):
            if time.monotonic() > deadline:
                raise ExternalSecretsError("CRD %s not Established after %d s" % (name, timeout))
            time.sleep(0.2)
    return names


# --- the controller ----------------------------------------------------------------------

def exited(entry):
    """Whether the process has ended; a child of ours is reaped first, since as a zombie it
    would keep its pid and start time."""
    try:
        os.waitpid(entry["pid"], os.WNOHANG)
    except ChildProcessError:
        pass
    return not processes.is_ours(entry)


def http_ok(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


def workers_started(log_path):
    try:
        with open(log_path, encoding="utf-8", errors="replace") as handle:
            return any(all(part in line for part in WORKERS_STARTED) for line in handle)
    except OSError:
        return False


class TestExternalSecrets(processes.Service):
    """ESO's controller for the cluster of ``kubeconfig``; its files all live under ``directory``."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, directory, kubeconfig, version=DEFAULT_VERSION, cache=None,
                 namespace=None, store_requeue_interval="10s", hosts=None):
        self.dir = os.path.abspath(directory)
        self.kubeconfig = os.path.abspath(kubeconfig)
        self.version = version.lstrip("v")
        self.cache = os.path.abspath(cache or cache_root())
        self.namespace = namespace
        self.store_requeue_interval = store_requeue_interval
        # In-cluster names (``vault.vault.svc:8200``) -> where that service really listens.
        self.hosts = dict(hosts or {})
        self._api = None

    @property
    def api(self):
        """The cluster's API with the kubeconfig's credentials."""
        if self._api is None:
            self._api = argocd_api.api_from_kubeconfig(self.kubeconfig, os.path.join(self.dir, "client"))
        return self._api

    def start(self, timeout=READY_TIMEOUT):
        state = self.state()
        if state and any(processes.is_ours(e) for e in state["processes"]):
            raise ExternalSecretsError("External Secrets is already running from %s (run down first)"
                                       % self.dir)
        build = ensure_build(self.version, self.cache)
        started = time.monotonic()
        for sub in ("logs", "home"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700, exist_ok=True)
        self._api = None
        crds = apply_crds(self.api, build["crds"])
        ports = {"metrics": processes.free_port(), "live": processes.free_port()}
        state = {"kubeconfig": self.kubeconfig, "version": self.version, "binary": build["binary"],
                 "crds": crds, "ports": ports, "processes": []}
        self._save(state)
        log_path = os.path.join(self.dir, "logs", CONTROLLER + ".log")
        if os.path.exists(log_path):
            os.unlink(log_path)  # readiness is read from this run's log
        command = self.command(build["binary"], ports)
        if self.hosts:
            state["processes"] += self._relays()
            command = self._with_hosts_file(command)
        entry = processes.start_process(CONTROLLER, command, os.path.join(self.dir, "logs"), self.env())
        state["processes"].append(entry)
        self._save(state)
        try:
            self._wait_ready(entry, ports, timeout)
        except BaseException:
            processes.stop_processes(state["processes"])
            raise
        state["ready_seconds"] = round(time.monotonic() - started, 2)
        self._save(state)
        return state

    def _relays(self):
        """A socat relay per in-cluster name, each on its own loopback address and the name's port."""
        entries, lines = [], []
        for index, (name, target) in enumerate(sorted(self.hosts.items()), start=1):
            host, port = name.rsplit(":", 1)
            address = "127.0.3.%d" % index
            lines.append("%s %s" % (address, host))
            entries.append(processes.start_process(
                "relay-%s" % host, ["socat", "TCP-LISTEN:%s,bind=%s,reuseaddr,fork" % (port, address),
                                    "TCP:%s" % target], os.path.join(self.dir, "logs")))
        with open(os.path.join(self.dir, "hosts"), "w") as handle:
            handle.write("127.0.0.1 localhost\n" + "\n".join(lines) + "\n")
        return entries

    def _with_hosts_file(self, command):
        """``command`` in a mount namespace of its own where /etc/hosts names the relays.

        The controller (a static Go binary) resolves through /etc/hosts first, so in-cluster
        names the rendered SecretStores use reach the test's servers, and the machine's own
        /etc/hosts is never touched.
        """
        script = 'mount --bind "$0" /etc/hosts && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                os.path.join(self.dir, "hosts")] + command

    def command(self, binary, ports):
        command = [binary,
                   "--metrics-addr", "127.0.0.1:%d" % ports["metrics"],
                   "--live-addr", "127.0.0.1:%d" % ports["live"],
                   "--enable-leader-election=false",
                   # Tests change a store and expect its status soon (default 5m).
                   "--store-requeue-interval", self.store_requeue_interval,
                   "--loglevel", "info", "--zap-time-encoding", "iso8601"]
        if self.namespace:
            command += ["--namespace", self.namespace]
        return command

    def env(self):
        # controller-runtime reads KUBECONFIG before it would try the in-cluster config.
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=os.path.join(self.dir, "home"))
        for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE"):
            env.pop(name, None)
        return env

    def _wait_ready(self, entry, ports, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if exited(entry):
                raise ExternalSecretsError("%s exited; see %s:\n%s"
                                           % (CONTROLLER, entry["log"], processes.tail(entry["log"])))
            try:
                if http_ok("http://127.0.0.1:%d/healthz" % ports["live"]) and workers_started(entry["log"]):
                    return
                last = "ExternalSecret workers not started yet"
            except (OSError, ValueError) as error:
                last = error
            time.sleep(0.25)
        raise ExternalSecretsError("%s not ready after %d s (%s); see %s"
                                   % (CONTROLLER, timeout, last, entry["log"]))

    def stop(self):
        left = self.stop_recorded()
        if left:
            raise ExternalSecretsError("still running: %s" % ", ".join(left))

    def status(self):
        state = self.state()
        if not state:
            return {"running": [], "ready": False}
        running = [e["name"] for e in state["processes"] if processes.is_ours(e)]
        try:
            ready = bool(running) and http_ok("http://127.0.0.1:%d/healthz" % state["ports"]["live"])
        except (OSError, ValueError):
            ready = False
        return {"running": running, "ready": ready, "ports": state["ports"],
                "version": state["version"], "kubeconfig": state["kubeconfig"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description="The External Secrets Operator controller "
                                     "against a test cluster, on loopback.")
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", required=True, help="the controller's directory (state, logs)")
    parser.add_argument("--kubeconfig", help="up: the cluster's admin kubeconfig")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="ESO release (default %(default)s)")
    parser.add_argument("--cache", default=cache_root(),
                        help="build cache (default: $PLINTH_CACHE or ~/.cache/plinth)")
    parser.add_argument("--namespace", help="up: watch ExternalSecrets in this namespace only")
    parser.add_argument("--host", action="append", default=[], metavar="NAME:PORT=ADDRESS:PORT",
                        help="up: make the in-cluster NAME:PORT reach ADDRESS:PORT (repeatable)")
    args = parser.parse_args(argv)
    hosts = dict(item.split("=", 1) for item in args.host)
    if args.command == "up" and not args.kubeconfig:
        parser.error("up needs --kubeconfig")
    eso = TestExternalSecrets(args.dir, args.kubeconfig or "", args.version, args.cache,
                              namespace=args.namespace, hosts=hosts)
    try:
        if args.command == "up":
            state = eso.start()
            print("ready in %.1f s: %d CRDs, /healthz 127.0.0.1:%d, metrics 127.0.0.1:%d" % (
                state["ready_seconds"], len(state["crds"]), state["ports"]["live"],
                state["ports"]["metrics"]))
        elif args.command == "down":
            eso.stop()
            print("stopped")
        else:
            status = eso.status()
            print(json.dumps(status, indent=2, sort_keys=True))
            if not status["ready"]:
                return 1
    except (ExternalSecretsError, argocd_api.ArgoCDError, testcluster.ApiError) as error:
        sys.exit("external_secrets: %s" % error)
    return 0


if __name__ == "__main__":
    sys.exit(main())

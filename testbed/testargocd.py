#!/usr/bin/env python3
"""A real Argo CD (application-controller, repo-server, redis) against a test cluster, for tests.

    testargocd.py up --dir DIR --kubeconfig ADMIN.conf [--seed-config] [--version 3.4.4]
    testargocd.py status --dir DIR
    testargocd.py down --dir DIR

`up` installs Argo CD's CRDs (Application, AppProject, ApplicationSet) with server-side
apply, creates the `argocd` namespace if missing and starts, on free loopback ports:
redis-server (Debian's, nothing persisted), argocd-repo-server (plaintext gRPC) and
argocd-application-controller. The controller treats the kubeconfig's cluster as the
in-cluster destination https://kubernetes.default.svc (ARGOCD_FAKE_IN_CLUSTER=true), so
Applications deploy into the test cluster. `up` returns once the repo-server answers and
the controller's /healthz does (it serves that only after its caches have synced), and
prints the ports. `down` stops every process `up` started; state.json in DIR has their
pids (and start times, so a reused pid is never signalled), the logs are in DIR/logs.

What Argo CD v3.4 needs in its namespace, as found: the ConfigMap argocd-cm, labelled
app.kubernetes.io/part-of=argocd (its settings informer sees no other ConfigMaps or
Secrets): without it the controller exits at once ("error loading cache settings:
configmap argocd-cm not found"); an empty one will do. Each Application needs its
AppProject: argocd-server creates `default` at start, and none runs here ("Application
referencing project default which does not exist"). argocd-secret, argocd-rbac-cm and
the other ConfigMaps are optional for the controller and repo-server. The real
deployment gets argocd-cm from the argo-cd chart, so `up` never creates or changes
either object by itself: --seed-config creates a minimal one of each where absent, and
without it `up` stops early when argocd-cm is missing or lacks the label.

The controller's metrics and /healthz server binds 0.0.0.0 (no flag changes it in v3.4),
and test servers listen on loopback only. So the controller runs in a network namespace
of its own, created for it and gone with it: a relay process (this script's `relay`
command) makes the API server, redis and repo-server ports appear on that namespace's
loopback and brings its /healthz port out to a free port on this machine's loopback.
That needs root (CAP_SYS_ADMIN), as the other real-host tests do.

Known limit of Argo CD itself: the repo-server's askpass socket is the fixed path
/tmp/reposerver-ask-pass.sock, so two test Argo CDs on one machine share it; only
HTTPS repositories with credentials use it (file:// repositories do not).

From Python (tests):

    with TestArgoCD(path, cluster.admin_conf, seed_config=True) as argocd:
        argocd.api.request("POST", "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications", app)

The binary comes from airgap/build_argocd.py's cache
(${PLINTH_CACHE:-~/.cache/plinth}/argocd/v<version>/); `up` builds it when missing
(12-20 minutes cold). The repo-server finds helm next to this Python (the project's
venv) and git on PATH.
"""

import argparse
import ctypes
import fcntl
import json
import os
import shutil
import socket
import struct
import sys
import time
import urllib.request

from airgap import build_argocd, launch, processes
from airgap.cache import root as cache_root
from testbed import forward, testcluster
from testbed.argocd_api import (
    PART_OF, ArgoCDError, api_from_kubeconfig, apply_crds, create_if_absent, seed_objects)

DEFAULT_VERSION = build_argocd.DEFAULT_VERSION
NAMESPACE = "argocd"
READY_TIMEOUT = 180
CONTROLLER = "argocd-application-controller"
REPO_SERVER = "argocd-repo-server"
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

# argocd-cmd-params-cm keys the chart passes to the application controller as environment.
CONTROLLER_PARAMETERS = {
    "controller.resource.health.persist": "ARGOCD_APPLICATION_CONTROLLER_PERSIST_RESOURCE_HEALTH",
}


def log(message):
    print("testargocd: %s" % message, file=sys.stderr, flush=True)


# --- binaries --------------------------------------------------------------------

def release_dir(version, cache):
    return os.path.join(cache, "argocd", "v" + version)


def find_binaries(version, cache):
    """bin dir and CRD paths of a complete build, or None."""
    root = release_dir(version, cache)
    bin_dir = os.path.join(root, "bin")
    needed = [os.path.join(bin_dir, name) for name in
              (build_argocd.BINARY, "git-verify-wrapper.sh") + build_argocd.COMMANDS]
    crds = [os.path.join(root, "crds", name) for name in build_argocd.CRDS]
    if not all(os.access(path, os.X_OK) for path in needed) or not all(map(os.path.isfile, crds)):
        return None
    return {"bin_dir": bin_dir, "crds": crds}


def ensure_binaries(version, cache):
    return launch.ensure_built(find_binaries, "airgap.build_argocd", version, cache,
                               "Argo CD %s, a cold build takes 12-20 minutes" % version, ArgoCDError)


def tools_path(bin_dir):
    """PATH for the repo-server: git-verify-wrapper.sh, the project's helm, git."""
    parts = [bin_dir, os.path.dirname(sys.executable), os.path.join(launch.ROOT, ".venv", "bin")]
    parts += os.environ.get("PATH", "").split(os.pathsep)
    path = os.pathsep.join(dict.fromkeys(p for p in parts if p))
    missing = [tool for tool in ("git", "helm") if shutil.which(tool, path=path) is None]
    if missing:
        raise ArgoCDError("not on PATH for the repo-server: %s" % ", ".join(missing))
    return path


# --- the controller's network namespace ------------------------------------------------

def _libc_call(name, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        raise OSError(ctypes.get_errno(), "%s: %s" % (name, os.strerror(ctypes.get_errno())))


def _loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def relay(inward_ports, outward, ready_path):
    """Run in a new network namespace (this process stays in it, so /proc/PID/ns/net names
    it) and forward: each inward port on its loopback to the same port on the machine's
    loopback; outward LISTEN=TARGET from the machine's 127.0.0.1:LISTEN to 127.0.0.1:TARGET
    inside. The forwarders are testbed.forward's command lines, children of this process and
    in its process group, which `down` signals. They enter the namespaces through this
    process's /proc entries, so it stays until one of them ends."""
    host_ns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    _libc_call("unshare", CLONE_NEWNET)
    _loopback_up()
    host, own = "/proc/%d/fd/%d" % (os.getpid(), host_ns), "/proc/%d/ns/net" % os.getpid()
    commands = [forward.command("127.0.0.1:%d" % port, "127.0.0.1:%d" % port, host) for port in inward_ports]
    commands += [["nsenter", "--net=" + host]
                 + forward.command("127.0.0.1:%d" % listen, "127.0.0.1:%d" % target, own)
                 for listen, target in outward]
    try:
        for command in commands:
            forward.launch(command, new_session=False)
    except forward.ForwardError as error:
        raise ArgoCDError("relay: %s" % error)
    with open(ready_path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write("%d\n" % os.getpid())
    os.replace(ready_path + ".tmp", ready_path)
    pid, status = os.wait()
    raise ArgoCDError("relay: forwarder pid %d ended (exit status %d)"
                      % (pid, os.waitstatus_to_exitcode(status)))


# --- Argo CD --------------------------------------------------------------------------

def exited(entry):
    """Whether a process `up` started has ended; a child of ours is reaped first, since
    as a zombie it would keep its pid and start time."""
    try:
        os.waitpid(entry["pid"], os.WNOHANG)
    except ChildProcessError:
        pass
    return not processes.is_ours(entry)


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def redis_ping(port):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def http_ok(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


class TestArgoCD(processes.Service):
    """Argo CD's controller and repo-server (and a redis) for the cluster of ``kubeconfig``;
    its files all live under ``directory``."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, directory, kubeconfig, version=DEFAULT_VERSION, cache=None,
                 seed_config=False, namespace=NAMESPACE, app_resync=10, self_heal_timeout=1):
        self.dir = os.path.abspath(directory)
        self.kubeconfig = os.path.abspath(kubeconfig)
        self.version = version.lstrip("v")
        self.cache = os.path.abspath(cache or cache_root())
        self.seed_config = seed_config
        self.namespace = namespace
        self.app_resync = app_resync
        self.self_heal_timeout = self_heal_timeout
        self._api = None

    @property
    def api(self):
        """The cluster's API with the kubeconfig's credentials."""
        if self._api is None:
            self._api = api_from_kubeconfig(self.kubeconfig, os.path.join(self.dir, "client"))
        return self._api

    # lifecycle -------------------------------------------------------------------------
    def start(self, timeout=READY_TIMEOUT):
        state = self.state()
        if state and any(processes.is_ours(e) for e in state["processes"]):
            raise ArgoCDError("Argo CD is already running from %s (run down first)" % self.dir)
        if os.geteuid() != 0:
            raise ArgoCDError("must run as root: the controller gets a network namespace of its own")
        binaries = ensure_binaries(self.version, self.cache)
        path = tools_path(binaries["bin_dir"])
        started = time.monotonic()
        for sub in ("logs", "home", "tmp", "redis"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700, exist_ok=True)
        self._api = None
        self.prepare_cluster(binaries["crds"])
        ports = {"redis": processes.free_port(), "repo_server": processes.free_port(),
                 "repo_server_metrics": processes.free_port(),
                 "controller_metrics": processes.free_port()}
        api_port = int(self.api.server.rsplit(":", 1)[1])
        state = {"kubeconfig": self.kubeconfig, "namespace": self.namespace, "ports": ports,
                 "version": self.version, "bin_dir": binaries["bin_dir"], "processes": []}
        self._save(state)
        try:
            self._run(state, "redis-server", self._redis_command(ports),
                      lambda: redis_ping(ports["redis"]), timeout)
            self._run(state, REPO_SERVER, self._repo_server_command(binaries, ports),
                      lambda: port_open(ports["repo_server"]) and http_ok(
                          "http://127.0.0.1:%d/healthz" % ports["repo_server_metrics"]),
                      timeout, self._env(path))
            ready_path = os.path.join(self.dir, "relay.ready")
            if os.path.exists(ready_path):
                os.unlink(ready_path)
            # Inside the namespace the controller serves metrics on the same port number.
            self._run(state, "netns-relay", [
                *launch.module_command("testbed.testargocd"), "relay", "--ready-file", ready_path,
                "--inward", ",".join(str(p) for p in (api_port, ports["redis"], ports["repo_server"])),
                "--outward", "%d=%d" % (ports["controller_metrics"], ports["controller_metrics"])],
                lambda: os.path.exists(ready_path), timeout)
            relay_pid = state["processes"][-1]["pid"]
            self._run(state, CONTROLLER, ["nsenter", "--net=/proc/%d/ns/net" % relay_pid, "--"]
                      + self._controller_command(binaries, ports),
                      lambda: http_ok("http://127.0.0.1:%d/healthz" % ports["controller_metrics"]),
                      timeout, self._env(path, controller=True))
        except BaseException:
            processes.stop_processes(state["processes"])
            raise
        state["ready_seconds"] = round(time.monotonic() - started, 2)
        self._save(state)
        return state

    def prepare_cluster(self, crd_paths):
        apply_crds(self.api, crd_paths)
        create_if_absent(self.api, "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}})
        if self.seed_config:
            for path, body in seed_objects(self.namespace):
                if create_if_absent(self.api, path, body):
                    log("created %s %s" % (body["kind"], body["metadata"]["name"]))
        self.check_settings()

    def check_settings(self):
        """Fail before starting anything when the controller would exit at once."""
        try:
            labels = self.api.request("GET", "/api/v1/namespaces/%s/configmaps/argocd-cm"
                                      % self.namespace)["metadata"].get("labels") or {}
        except testcluster.ApiError as error:
            if error.status != 404:
                raise
            raise ArgoCDError("no ConfigMap argocd-cm in namespace %s: the controller needs it "
                              "(install it, e.g. with the argo-cd chart, or use --seed-config)"
                              % self.namespace)
        if any(labels.get(key) != value for key, value in PART_OF.items()):
            raise ArgoCDError("ConfigMap %s/argocd-cm lacks the label %s: Argo CD does not see it"
                              % (self.namespace, ",".join("%s=%s" % item for item in PART_OF.items())))

    def _env(self, path, controller=False):
        env = dict(os.environ, PATH=path, HOME=os.path.join(self.dir, "home"),
                   TMPDIR=os.path.join(self.dir, "tmp"),
                   # No GnuPG keyring (its default lives under /app/config).
                   ARGOCD_GPG_ENABLED="false")
        env.pop("KUBECONFIG", None)
        if controller:
            env.update(ARGOCD_FAKE_IN_CLUSTER="true", KUBECONFIG=self.kubeconfig)
            env.update(self.command_parameters(CONTROLLER_PARAMETERS))
        return env

    def command_parameters(self, mapping):
        """Environment from argocd-cmd-params-cm, as the argo-cd chart's workloads read it.

        Only the keys in ``mapping`` (parameter -> variable) are taken: the ones whose
        effect the tests rely on.
        """
        try:
            data = self.api.request("GET", "/api/v1/namespaces/%s/configmaps/argocd-cmd-params-cm"
                                    % self.namespace).get("data") or {}
        except testcluster.ApiError as error:
            if error.status != 404:
                raise
            return {}
        return dict((variable, str(data[key])) for key, variable in mapping.items() if key in data)

    def _redis_command(self, ports):
        return ["redis-server", "--bind", "127.0.0.1", "--port", str(ports["redis"]),
                "--save", "", "--appendonly", "no", "--protected-mode", "yes",
                "--dir", os.path.join(self.dir, "redis"), "--logfile", ""]

    def _repo_server_command(self, binaries, ports):
        return [os.path.join(binaries["bin_dir"], REPO_SERVER),
                "--address", "127.0.0.1", "--port", str(ports["repo_server"]),
                "--metrics-address", "127.0.0.1", "--metrics-port", str(ports["repo_server_metrics"]),
                # Plain gRPC on loopback; from v3.6 on its client CA default contradicts --disable-tls.
                "--disable-tls", "--client-ca-path=", "--redis", "127.0.0.1:%d" % ports["redis"],
                # How long a branch's resolved commit is cached (git ls-remote); the real
                # deployment ties it to the controller's resync (timeout.reconciliation).
                "--revision-cache-expiration", "%ds" % self.app_resync,
                "--logformat", "text", "--loglevel", "info"]

    def _controller_command(self, binaries, ports):
        return [os.path.join(binaries["bin_dir"], CONTROLLER),
                "--namespace", self.namespace,
                "--repo-server", "127.0.0.1:%d" % ports["repo_server"], "--repo-server-plaintext",
                "--redis", "127.0.0.1:%d" % ports["redis"],
                "--metrics-port", str(ports["controller_metrics"]),
                # Tests wait for changes in git and drift: check often, heal at once.
                "--app-resync", str(self.app_resync), "--app-resync-jitter", "0",
                "--self-heal-timeout-seconds", str(self.self_heal_timeout),
                "--self-heal-backoff-timeout-seconds", "1", "--self-heal-backoff-cap-seconds", "10",
                "--status-processors", "2", "--operation-processors", "2",
                "--logformat", "text", "--loglevel", "info"]

    def _run(self, state, name, command, probe, timeout, env=None):
        entry = processes.start_process(name, command, os.path.join(self.dir, "logs"), env)
        state["processes"].append(entry)
        self._save(state)
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for running in state["processes"]:
                if exited(running):
                    tail = processes.tail(running["log"])
                    raise ArgoCDError("%s exited; see %s:\n%s" % (running["name"], running["log"], tail))
            try:
                if probe():
                    return
            except (OSError, ValueError) as error:
                last = error
            time.sleep(0.25)
        raise ArgoCDError("%s not serving after %d s (%s); see %s" % (name, timeout, last, entry["log"]))

    def stop(self):
        left = self.stop_recorded()
        if left:
            raise ArgoCDError("still running: %s" % ", ".join(left))

    def status(self):
        state = self.state()
        if not state:
            return {"running": [], "ready": False}
        running = [e["name"] for e in state["processes"] if processes.is_ours(e)]
        ports = state["ports"]
        try:
            ready = (port_open(ports["repo_server"])
                     and http_ok("http://127.0.0.1:%d/healthz" % ports["controller_metrics"]))
        except (OSError, ValueError):
            ready = False
        return {"running": running, "ready": ready, "ports": ports,
                "namespace": state["namespace"], "kubeconfig": state["kubeconfig"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description="Argo CD's application-controller and "
                                     "repo-server (and redis) against a test cluster, on loopback.")
    parser.add_argument("command", choices=("up", "down", "status", "relay"))
    parser.add_argument("--dir", help="Argo CD's directory (state, logs, repo-server's clones)")
    parser.add_argument("--kubeconfig", help="up: the cluster's admin kubeconfig")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="Argo CD release (default %(default)s)")
    parser.add_argument("--cache", default=cache_root(),
                        help="build cache (default: $PLINTH_CACHE or ~/.cache/plinth)")
    parser.add_argument("--seed-config", action="store_true",
                        help="up: create an empty argocd-cm and the AppProject default where "
                             "absent (never changes existing ones)")
    parser.add_argument("--app-resync", type=int, default=10,
                        help="up: seconds between the controller's refreshes (default %(default)s)")
    parser.add_argument("--ready-file", help=argparse.SUPPRESS)
    parser.add_argument("--inward", default="", help=argparse.SUPPRESS)
    parser.add_argument("--outward", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "relay":
        relay([int(p) for p in args.inward.split(",") if p],
              [tuple(int(p) for p in rule.split("=")) for rule in args.outward.split(",") if rule],
              args.ready_file)
        return 0
    if not args.dir:
        parser.error("--dir is required")
    if args.command == "up" and not args.kubeconfig:
        parser.error("up needs --kubeconfig")
    argocd = TestArgoCD(args.dir, args.kubeconfig or "", args.version, args.cache,
                        seed_config=args.seed_config, app_resync=args.app_resync)
    try:
        if args.command == "up":
            state = argocd.start()
            print("ready in %.1f s: repo-server 127.0.0.1:%d, controller /healthz 127.0.0.1:%d, "
                  "redis 127.0.0.1:%d, namespace %s" % (
                      state["ready_seconds"], state["ports"]["repo_server"],
                      state["ports"]["controller_metrics"], state["ports"]["redis"], state["namespace"]))
        elif args.command == "down":
            argocd.stop()
            print("stopped")
        else:
            status = argocd.status()
            print(json.dumps(status, indent=2, sort_keys=True))
            if not status["ready"]:
                return 1
    except (ArgoCDError, testcluster.ApiError, build_argocd.kube.BuildError) as error:
        sys.exit("testargocd: %s" % error)
    return 0


if __name__ == "__main__":
    sys.exit(main())

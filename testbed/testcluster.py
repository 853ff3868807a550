#!/usr/bin/env python3
"""A real Kubernetes control plane on loopback for tests: etcd, kube-apiserver, kube-controller-manager.

    python -m testbed.testcluster up --dir DIR [--version 1.36.3]     start (building missing binaries first)
    python -m testbed.testcluster up --dir DIR --pods                 ... and run pods: kube-scheduler and kwok too
    python -m testbed.testcluster status --dir DIR                    processes and /readyz
    python -m testbed.testcluster down --dir DIR                      stop everything `up` started

`up` writes a CA and certificates, starts etcd, kube-apiserver (RBAC on, secure port
on 127.0.0.1 only) and kube-controller-manager on free loopback ports, waits for
/readyz and writes DIR/admin.conf (a system:masters client certificate). Several
clusters coexist as long as their directories differ. Everything a cluster owns
lives in DIR: certificates, etcd data, logs, and state.json with the process ids
`down` stops. Nodes are never run: `register_nodes` creates Node objects the way
a kubelet (and kubeadm, for control-plane nodes) would.

Without --pods nothing runs a pod, so no Deployment ever becomes available. With
--pods the real kube-scheduler places pods on the registered Nodes (their labels,
taints, the pods' nodeSelectors and tolerations decide), and kwok plays every
Node's kubelet: bound pods go Running and Ready without a container, deleted ones
go away, and the Nodes stay Ready (their leases renewed). Both bind to 127.0.0.1.

From Python (tests, benchmarks):

    with TestCluster(path) as cluster:
        cluster.register_nodes([{"name": "cp-1", "control_plane": True}, {"name": "w-1"}])
        cluster.api.request("GET", "/api/v1/nodes")

Binaries come from airgap/build_kubernetes.py's cache
(${PLINTH_CACHE:-~/.cache/plinth}/kubernetes/v<version>/bin, .../etcd/v<etcd>/bin and,
for --pods, .../kwok/v<kwok>/bin with the Stages kwok follows in .../kwok/v<kwok>/stages).
Certificates need the `cryptography` package (a dependency of ansible-core).
"""

import argparse
import glob
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from airgap import build_kubernetes  # its kwok release and Stage layout
from airgap import cache as build_cache
from airgap import launch
from airgap.processes import Service, free_port, is_ours, start_process, stop_processes, tail
from testbed.pki import kubeconfig, write_client_cert, write_file, write_pki

DEFAULT_VERSION = "1.36.3"
CONTROL_PLANE_BINARIES = ("kube-apiserver", "kube-controller-manager")
SCHEDULER = "kube-scheduler"
KWOK = build_kubernetes.KWOK_TARGET
# Pods get addresses from here (kwok's default /24 holds 254 pods: too few for a platform).
POD_CIDR = "10.244.0.0/16"
# The kubelet's default; kwok renews each Node's Lease in kube-node-lease well within it.
NODE_LEASE_SECONDS = 40
SERVICE_CIDR = "10.96.0.0/12"
READY_TIMEOUT = 120
# Nodes registered here have no kubelet posting status: the node lifecycle controller
# would mark them unreachable and taint them halfway through a test.
CONTROLLERS = "*,-node-lifecycle-controller"
# With pods kwok renews every Node's Lease, so the node lifecycle controller runs: it lifts
# the not-ready taint that admission (TaintNodesByCondition) puts on each new Node once the
# Node reports Ready, as for a real kubelet's; without it nothing would be scheduled.
POD_CONTROLLERS = "*"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
EXCLUDE_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
CONTROL_PLANE_TAINT = {"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"}


class ClusterError(Exception):
    pass


def log(message):
    print("testcluster: %s" % message, file=sys.stderr, flush=True)


# --- binaries --------------------------------------------------------------------

def find_binaries(version, cache, pods=False):
    """Paths of etcd, kube-apiserver and kube-controller-manager (with pods: kube-scheduler
    and kwok too); None when one is missing."""
    bin_dir = os.path.join(cache, "kubernetes", "v" + version, "bin")
    found = dict((name, os.path.join(bin_dir, name)) for name in CONTROL_PLANE_BINARIES)
    # The etcd release is kubeadm's choice for this Kubernetes version; the newest built one serves.
    etcds = sorted(glob.glob(os.path.join(cache, "etcd", "v*", "bin", "etcd")), key=_etcd_version)
    found["etcd"] = etcds[-1] if etcds else None
    if pods:
        found[SCHEDULER] = os.path.join(bin_dir, SCHEDULER)
        found[KWOK] = os.path.join(build_kubernetes.kwok_release_dir(cache), "bin", KWOK)
        if not all(os.path.isfile(path) for path in kwok_stages(cache)):
            return None
    if not all(path and os.access(path, os.X_OK) for path in found.values()):
        return None
    return found


def kwok_stages(cache):
    """The Stage files kwok follows, put beside its binary by build_kubernetes' kwok target."""
    return build_kubernetes.kwok_stage_paths(build_kubernetes.kwok_release_dir(cache))


def _etcd_version(path):
    release = os.path.basename(os.path.dirname(os.path.dirname(path)))
    return tuple(int(part) if part.isdigit() else 0 for part in release.lstrip("v").split("."))


def ensure_binaries(version, cache, pods=False):
    found = find_binaries(version, cache, pods)
    if found:
        return found
    targets = CONTROL_PLANE_BINARIES + ((SCHEDULER,) if pods else ()) + ("etcd",) + ((KWOK,) if pods else ())
    log("building %s for %s (a cold build takes about ten minutes)" % (", ".join(targets), version))
    command = launch.module_command("airgap.build_kubernetes", "--version", version,
                                    "--cache", cache, "--no-crictl", "--binaries", ",".join(targets))
    if subprocess.call(command) != 0:
        raise ClusterError("building the control-plane binaries failed: %s" % " ".join(command))
    found = find_binaries(version, cache, pods)
    if not found:
        raise ClusterError("binaries still missing after the build in %s" % cache)
    return found


# --- processes -------------------------------------------------------------------

def health_probe(url):
    """A callable that is True once ``url`` answers "ok".

    The scheduler serves /healthz with a certificate it made up at start and asks no
    credentials for it: the probe sends none, so it skips the certificate check.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def probe():
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return response.read().decode().strip() == "ok"
    return probe


# --- API access --------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body[:500]))
        self.status = status
        self.body = body


class Api:
    """Minimal JSON client for the test API server (standard library only)."""

    def __init__(self, server, ca_file, cert_file=None, key_file=None, token=None):
        self.server = server
        self.context = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            self.context.load_cert_chain(cert_file, key_file)
        self.token = token

    def request(self, method, path, body=None, content_type="application/json", query=None):
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self.token:
            request.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=30) as response:
                text = response.read().decode()
        except urllib.error.HTTPError as error:
            raise ApiError(error.code, error.read().decode(errors="replace"))
        return json.loads(text) if text.startswith("{") else text

    def get_or_none(self, path):
        """The object at ``path``, or None when there is none."""
        try:
            return self.request("GET", path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    def node(self, name):
        return self.request("GET", "/api/v1/nodes/" + name)


def eventually(check, what, timeout, interval=0.5):
    """Poll ``check() -> (done, observed)`` until done; fail the test with the last observation."""
    deadline = time.monotonic() + timeout
    while True:
        done, observed = check()
        if done:
            return observed
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %d s; last observed: %r" % (what, timeout, observed))
        time.sleep(interval)


def kubelet_node(name, labels=None, taints=None, arch="amd64"):
    """The Node a kubelet registers: its default labels, then --node-labels and --register-with-taints."""
    node_labels = {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch,
    }
    node_labels.update(labels or {})
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": node_labels}, "spec": {}}
    if taints:
        node["spec"]["taints"] = list(taints)
    return node


def register_node(api, name, control_plane=False, labels=None, taints=None):
    """Create Node ``name`` as its kubelet would; control-plane nodes then get kubeadm's marks.

    kubeadm's mark-control-plane phase patches the label and the NoSchedule taint
    onto the Node after the kubelet has registered it, under its own field manager.
    """
    api.request("POST", "/api/v1/nodes", kubelet_node(name, labels, taints),
                query={"fieldManager": "kubelet"})
    if control_plane:
        node = api.node(name)
        current = node["spec"].get("taints", [])
        if not any(t["key"] == CONTROL_PLANE_TAINT["key"] and t["effect"] == CONTROL_PLANE_TAINT["effect"]
                   for t in current):
            current = current + [CONTROL_PLANE_TAINT]
        patch = {"metadata": {"labels": {CONTROL_PLANE_LABEL: "", EXCLUDE_LB_LABEL: ""}},
                 "spec": {"taints": current}}
        api.request("PATCH", "/api/v1/nodes/" + name, patch,
                    content_type="application/strategic-merge-patch+json",
                    query={"fieldManager": "kubeadm"})


# --- the cluster -------------------------------------------------------------------

class TestCluster(Service):
    """One control plane whose files all live under ``directory``."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, directory, version=DEFAULT_VERSION, cache=None, pods=False):
        self.dir = os.path.abspath(directory)
        self.version = version.lstrip("v")
        self.cache = os.path.abspath(cache or build_cache.root())
        self.pods = pods
        self.pki = os.path.join(self.dir, "pki")
        self.admin_conf = os.path.join(self.dir, "admin.conf")
        self._api = None

    @property
    def server(self):
        state = self.state()
        if not state:
            raise ClusterError("no cluster in %s (run up first)" % self.dir)
        return state["server"]

    @property
    def api(self):
        """Admin access (system:masters)."""
        if self._api is None:
            self._api = self.client("admin")
        return self._api

    def client(self, name=None, token=None):
        """An Api using client certificate ``pki/<name>.crt``, a bearer token, or nothing."""
        cert = key = None
        if name:
            cert, key = os.path.join(self.pki, name + ".crt"), os.path.join(self.pki, name + ".key")
        return Api(self.server, os.path.join(self.pki, "ca.crt"), cert, key, token)

    # lifecycle -------------------------------------------------------------------------
    def start(self, timeout=READY_TIMEOUT):
        state = self.state()
        if state and any(is_ours(e) for e in state["processes"]):
            raise ClusterError("a cluster is already running from %s (run down first)" % self.dir)
        binaries = ensure_binaries(self.version, self.cache, self.pods)
        started = time.monotonic()
        for sub in ("logs", "etcd"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700, exist_ok=True)
        service_ip = str(next(ipaddress.ip_network(SERVICE_CIDR).hosts()))
        write_pki(self.pki, service_ip)
        ports = {"etcd_client": free_port(), "etcd_peer": free_port(), "apiserver": free_port()}
        if self.pods:
            ports.update({"scheduler": free_port(), "kwok": free_port()})
        server = "https://127.0.0.1:%d" % ports["apiserver"]
        state = {"server": server, "ports": ports, "version": self.version, "processes": [],
                 "binaries": binaries, "pods": self.pods}
        self._save(state)
        self._api = None
        log_dir = os.path.join(self.dir, "logs")
        try:
            for name, command in self._commands(binaries, ports, server):
                state["processes"].append(start_process(name, command, log_dir))
                self._save(state)
                if name == "kube-apiserver":
                    self._wait_ready(timeout, state)
            if self.pods:
                probes = []
                for name, command, env, probe in self._pod_commands(binaries, ports, server):
                    state["processes"].append(start_process(name, command, log_dir, env))
                    self._save(state)
                    probes.append((name, probe))
                # Started together, waited for together: they do not need each other to come up.
                for name, probe in probes:
                    self._wait_until(name, probe, timeout, state)
        except BaseException:
            stop_processes(state["processes"])
            raise
        state["ready_seconds"] = round(time.monotonic() - started, 2)
        self._save(state)
        return state

    def _commands(self, binaries, ports, server):
        pki = self.pki
        etcd_url = "http://127.0.0.1:%d" % ports["etcd_client"]
        peer_url = "http://127.0.0.1:%d" % ports["etcd_peer"]
        self._write_kubeconfig(self.admin_conf, server, "admin")
        cm_conf = os.path.join(self.dir, "controller-manager.conf")
        self._write_kubeconfig(cm_conf, server, "controller-manager")
        yield "etcd", [
            binaries["etcd"], "--name", "plinth-test", "--data-dir", os.path.join(self.dir, "etcd"),
            "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", "plinth-test=" + peer_url,
            # Throwaway data: durability buys nothing and fsync costs seconds on shared disks.
            "--unsafe-no-fsync", "--log-level", "warn",
        ]
        yield "kube-apiserver", [
            binaries["kube-apiserver"],
            "--etcd-servers", etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(ports["apiserver"]),
            "--tls-cert-file", os.path.join(pki, "apiserver.crt"),
            "--tls-private-key-file", os.path.join(pki, "apiserver.key"),
            "--client-ca-file", os.path.join(pki, "ca.crt"),
            "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NodeRestriction",
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", os.path.join(pki, "sa.pub"),
            "--service-account-signing-key-file", os.path.join(pki, "sa.key"),
            "--allow-privileged=true", "--profiling=false",
            # The kubernetes Service may not point at loopback; nothing in-cluster needs it here.
            "--endpoint-reconciler-type", "none",
            # Never touch the machine's default /var/run/kubernetes.
            "--cert-dir", os.path.join(pki, "generated"),
        ]
        yield "kube-controller-manager", [
            binaries["kube-controller-manager"],
            "--kubeconfig", cm_conf,
            "--authentication-kubeconfig", cm_conf, "--authorization-kubeconfig", cm_conf,
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--leader-elect=false", "--use-service-account-credentials=true",
            "--controllers", POD_CONTROLLERS if self.pods else CONTROLLERS,
            "--service-account-private-key-file", os.path.join(pki, "sa.key"),
            "--root-ca-file", os.path.join(pki, "ca.crt"),
            "--cluster-signing-cert-file", os.path.join(pki, "ca.crt"),
            "--cluster-signing-key-file", os.path.join(pki, "ca.key"),
            "--service-cluster-ip-range", SERVICE_CIDR,
            "--cert-dir", os.path.join(pki, "generated"),
        ]

    def _pod_commands(self, binaries, ports, server):
        """(name, command, environment, health probe) of kube-scheduler and kwok."""
        write_client_cert(self.pki, "scheduler", "system:kube-scheduler")
        scheduler_conf = os.path.join(self.dir, "scheduler.conf")
        self._write_kubeconfig(scheduler_conf, server, "scheduler")
        yield SCHEDULER, [
            binaries[SCHEDULER],
            "--kubeconfig", scheduler_conf,
            "--authentication-kubeconfig", scheduler_conf, "--authorization-kubeconfig", scheduler_conf,
            "--bind-address", "127.0.0.1", "--secure-port", str(ports["scheduler"]),
            "--leader-elect=false", "--profiling=false",
            "--cert-dir", os.path.join(self.pki, "generated"),
        ], None, health_probe("https://127.0.0.1:%d/healthz" % ports["scheduler"])

        command = [
            binaries[KWOK],
            # It writes the status of every Node and pod and deletes pods: the admin's rights.
            "--kubeconfig", self.admin_conf,
            # Every registered Node is one kwok answers for, whatever its labels.
            "--manage-all-nodes=true",
            # The Stage CRDs are not installed: the Stages come from these files alone.
            "--enable-crds=",
            "--node-lease-duration-seconds", str(NODE_LEASE_SECONDS),
            "--node-ip", "127.0.0.1", "--cidr", POD_CIDR,
            # Its server, for /healthz; no port-forward, exec or logs are configured to serve.
            "--server-address", "127.0.0.1:%d" % ports["kwok"],
        ]
        for stage in kwok_stages(self.cache):
            command += ["--config", stage]
        # kwok reads ~/.kwok/kwok.yaml before any --config: a home of its own keeps a
        # user's kwok settings out of the test cluster.
        home = os.path.join(self.dir, "kwok-home")
        os.makedirs(home, mode=0o700, exist_ok=True)
        yield KWOK, command, dict(os.environ, HOME=home), health_probe(
            "http://127.0.0.1:%d/healthz" % ports["kwok"])

    def _write_kubeconfig(self, path, server, client):
        write_file(path, json.dumps(kubeconfig(server, self.pki, client), indent=2).encode())

    def _wait_ready(self, timeout, state):
        self._wait_until("kube-apiserver", lambda: self.api.request("GET", "/readyz") == "ok",
                         timeout, state)

    def _wait_until(self, name, probe, timeout, state):
        """Until ``probe()`` is true; fails early when any process of ours has exited."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for entry in state["processes"]:
                if not is_ours(entry):
                    raise ClusterError("%s exited; see %s:\n%s" % (entry["name"], entry["log"], tail(entry["log"])))
            try:
                if probe():
                    return
            except (ApiError, OSError) as error:
                last = error
            time.sleep(0.2)
        raise ClusterError("%s not ready after %ds (%s); see %s"
                           % (name, timeout, last, os.path.join(self.dir, "logs")))

    def stop(self):
        left = self.stop_recorded()
        if left:
            raise ClusterError("still running: %s" % ", ".join(left))

    def status(self):
        state = self.state()
        if not state:
            return {"running": [], "ready": False}
        running = [e["name"] for e in state["processes"] if is_ours(e)]
        try:
            ready = self.api.request("GET", "/readyz") == "ok"
        except (ApiError, OSError, ClusterError):
            ready = False
        return {"running": running, "ready": ready, "server": state["server"],
                "admin_conf": self.admin_conf, "pods": state.get("pods", False)}

    # nodes ----------------------------------------------------------------------------------
    def register_nodes(self, nodes):
        """Create each node dict ({name, control_plane, labels, taints}) as kubelet and kubeadm would."""
        for node in nodes:
            register_node(self.api, node["name"], node.get("control_plane", False),
                          node.get("labels"), node.get("taints"))

    def delete_nodes(self, names=None):
        """Delete the named nodes (all when ``names`` is None)."""
        if names is None:
            names = [n["metadata"]["name"] for n in self.api.request("GET", "/api/v1/nodes")["items"]]
        for name in names:
            try:
                self.api.request("DELETE", "/api/v1/nodes/" + name)
            except ApiError as error:
                if error.status != 404:
                    raise


def main(argv=None):
    parser = argparse.ArgumentParser(description="A real kube-apiserver, etcd and "
                                     "kube-controller-manager on loopback, for tests.")
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", required=True, help="the cluster's directory (state, certs, data, logs)")
    parser.add_argument("--version", default=DEFAULT_VERSION, help="Kubernetes version (default %(default)s)")
    parser.add_argument("--cache", default=build_cache.root(),
                        help="build cache (default: $PLINTH_CACHE or ~/.cache/plinth)")
    parser.add_argument("--pods", action="store_true",
                        help="up: also run kube-scheduler and kwok, so pods are placed on the "
                             "registered Nodes and go Running and Ready")
    args = parser.parse_args(argv)
    cluster = TestCluster(args.dir, args.version, args.cache, pods=args.pods)
    try:
        if args.command == "up":
            state = cluster.start()
            print("ready in %.1f s: %s (kubeconfig %s)" % (state["ready_seconds"], state["server"],
                                                          cluster.admin_conf))
        elif args.command == "down":
            cluster.stop()
            print("stopped")
        else:
            status = cluster.status()
            print(json.dumps(status, indent=2, sort_keys=True))
            if not status["ready"]:
                return 1
    except ClusterError as error:
        sys.exit("testcluster: %s" % error)
    return 0


if __name__ == "__main__":
    sys.exit(main())

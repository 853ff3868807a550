"""A real Argo CD against the test cluster: a git repository in, objects in the cluster out.

The controller and repo-server come from airgap/build_argocd.py's cache (built first
when missing, 12-20 minutes cold); the tests run in file order on one Application.
"""

import functools
import ipaddress
import os
import subprocess

import pytest

from airgap import processes
from testbed import testargocd, testcluster

POLL_TIMEOUT = 120
APP_PATH = "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"
CONFIGMAP_PATH = "/api/v1/namespaces/demo/configmaps/greeting"
DESTINATION = "https://kubernetes.default.svc"


def configmap_manifest(greeting):
    return ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\n"
            "data:\n  greeting: %s\n" % greeting)


def git(work, *args):
    return subprocess.run(["git", "-C", work, "-c", "user.name=Plinth Test",
                           "-c", "user.email=test@plinth.invalid"] + list(args),
                          check=True, stdout=subprocess.PIPE, text=True).stdout.strip()


def commit_and_push(work, greeting, message):
    with open(os.path.join(work, "app", "configmap.yaml"), "w", encoding="utf-8") as handle:
        handle.write(configmap_manifest(greeting))
    git(work, "add", "app")
    git(work, "commit", "-q", "-m", message)
    git(work, "push", "-q", "origin", "HEAD:main")
    return git(work, "rev-parse", "HEAD")


eventually = functools.partial(testcluster.eventually, timeout=POLL_TIMEOUT, interval=1)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("gitops")
    remote, work = str(root / "remote.git"), str(root / "work")
    subprocess.run(["git", "init", "-q", "--bare", "--initial-branch=main", remote], check=True)
    subprocess.run(["git", "clone", "-q", remote, work], check=True)
    os.makedirs(os.path.join(work, "app"))
    first = commit_and_push(work, "hello", "A ConfigMap for Argo CD to deploy")
    return {"url": "file://" + remote, "work": work, "revisions": [first]}


@pytest.fixture(scope="module")
def argocd(cluster, tmp_path_factory):
    test_argocd = testargocd.TestArgoCD(str(tmp_path_factory.mktemp("argocd")), cluster.admin_conf,
                                        seed_config=True)
    test_argocd.start()
    yield test_argocd
    test_argocd.stop()


@pytest.fixture(scope="module")
def app(argocd, repo):
    argocd.api.request("POST", APP_PATH, {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "demo", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo["url"], "path": "app", "targetRevision": "main"},
            "destination": {"server": DESTINATION, "namespace": "demo"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True},
                           "syncOptions": ["CreateNamespace=true"]},
        }})
    return "demo"


def app_state(api, name):
    status = (api.get_or_none("%s/%s" % (APP_PATH, name)) or {}).get("status", {})
    return {"sync": status.get("sync", {}).get("status"),
            "revision": status.get("sync", {}).get("revision"),
            "health": status.get("health", {}).get("status"),
            "conditions": [c.get("message") for c in status.get("conditions", [])],
            "operation": (status.get("operationState") or {}).get("message")}


def deployed(api, name, greeting, revision):
    """(done, observed): the ConfigMap carries greeting and the app is Synced and Healthy at revision."""
    configmap = api.get_or_none(CONFIGMAP_PATH)
    observed = dict(app_state(api, name),
                    configmap=configmap and configmap.get("data"))
    done = (observed["configmap"] == {"greeting": greeting} and observed["sync"] == "Synced"
            and observed["health"] == "Healthy" and observed["revision"] == revision)
    return done, observed


def test_argocd_serves_with_the_seeded_settings(argocd):
    state = argocd.state()
    assert argocd.status()["ready"], argocd.status()
    assert {e["name"] for e in state["processes"]} == {
        "redis-server", "argocd-repo-server", "netns-relay", "argocd-application-controller"}
    assert state["ready_seconds"] < testargocd.READY_TIMEOUT
    settings = argocd.api.request("GET", "/api/v1/namespaces/argocd/configmaps/argocd-cm")
    assert settings["metadata"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    assert argocd.api.request("GET", "/apis/argoproj.io/v1alpha1/namespaces/argocd/appprojects/default")


def test_argocd_listens_on_loopback_only(argocd):
    """Every listening socket is on loopback, but the controller's: its metrics server
    binds 0.0.0.0, so it runs in a network namespace of its own (the relay's)."""
    ours = os.readlink("/proc/self/ns/net")
    pids = {e["name"]: e["pid"] for e in argocd.state()["processes"]}
    netns = {name: os.readlink("/proc/%d/ns/net" % pid) for name, pid in pids.items()}
    assert netns["argocd-application-controller"] != ours
    assert netns["argocd-application-controller"] == netns["netns-relay"]
    assert netns["redis-server"] == netns["argocd-repo-server"] == ours
    for name in ("redis-server", "argocd-repo-server", "netns-relay"):
        addresses = listening_addresses(pids[name])
        assert addresses, "%s listens nowhere" % name
        assert all(address.is_loopback for address in addresses), (name, addresses)


def listening_addresses(pid):
    """ip_address objects of the TCP sockets ``pid`` and its children listen on (state 0A is
    LISTEN): the relay's forwarders are its children."""
    with open("/proc/%d/task/%d/children" % (pid, pid), encoding="ascii") as handle:
        owners = [pid] + [int(child) for child in handle.read().split()]
    inodes = set()
    for owner in owners:
        try:
            fds = ["/proc/%d/fd/%s" % (owner, fd) for fd in os.listdir("/proc/%d/fd" % owner)]
        except OSError:
            continue  # a child that has ended meanwhile
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = []
    # Its own network's tables and this machine's: the relay has sockets in both.
    tables = ["/proc/%s/net/%s" % (owner, table) for owner in ("self", pid) for table in ("tcp", "tcp6")]
    for table in tables:
        with open(table, encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    addresses.append(kernel_address(fields[1].rsplit(":", 1)[0]))
    return addresses


def kernel_address(text):
    """/proc/net/tcp* prints addresses as 32-bit words in host (little-endian) order."""
    raw = b"".join(bytes.fromhex(text[i:i + 8])[::-1] for i in range(0, len(text), 8))
    address = ipaddress.ip_address(raw)
    return getattr(address, "ipv4_mapped", None) or address


def test_application_deploys_the_manifest_from_git(argocd, repo, app):
    observed = eventually(lambda: deployed(argocd.api, app, "hello", repo["revisions"][-1]),
                          "the ConfigMap from git, Synced and Healthy")
    assert observed["configmap"] == {"greeting": "hello"}
    namespace = argocd.api.request("GET", "/api/v1/namespaces/demo")
    assert namespace["status"]["phase"] == "Active"


def test_change_pushed_to_git_arrives(argocd, repo, app):
    repo["revisions"].append(commit_and_push(repo["work"], "hello-again", "Change the greeting"))
    eventually(lambda: deployed(argocd.api, app, "hello-again", repo["revisions"][-1]),
               "the changed ConfigMap at the new revision")


def test_deleted_object_is_healed(argocd, repo, app):
    before = argocd.api.request("GET", CONFIGMAP_PATH)["metadata"]["uid"]
    argocd.api.request("DELETE", CONFIGMAP_PATH)

    def healed():
        configmap = argocd.api.get_or_none(CONFIGMAP_PATH)
        uid = configmap and configmap["metadata"]["uid"]
        done, observed = deployed(argocd.api, app, "hello-again", repo["revisions"][-1])
        return done and uid not in (None, before), dict(observed, uid=uid)
    eventually(healed, "the deleted ConfigMap created again by self-heal")


def test_down_leaves_no_process(argocd):
    entries = argocd.state()["processes"]
    ports = argocd.state()["ports"]
    argocd.stop()
    assert not [e["name"] for e in entries if processes.is_ours(e)]
    assert not [name for name, port in ports.items() if testargocd.port_open(port)]
    assert not argocd.status()["ready"]

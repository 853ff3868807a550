"""A real External Secrets Operator against the test cluster: a SecretStore and an
ExternalSecret in, a Kubernetes Secret out.

The store is ESO's `fake` provider (values kept in the SecretStore itself), so this proves
the controller, its CRDs and its API (external-secrets.io/v1) outside a cluster; the
OpenBao store builds on it. The controller comes from airgap/build_external_secrets.py's
cache (built first when missing, 6-10 minutes cold); the tests run in file order.
"""

import base64
import functools
import ipaddress
import os

import pytest

from testbed import external_secrets, testcluster

POLL_TIMEOUT = 60
NAMESPACE = "eso-demo"
API = "/apis/external-secrets.io/v1/namespaces/%s" % NAMESPACE
SECRET_PATH = "/api/v1/namespaces/%s/secrets/greeting" % NAMESPACE


eventually = functools.partial(testcluster.eventually, timeout=POLL_TIMEOUT, interval=0.5)


def condition(obj, kind):
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return item
    return None


def fake_store(value):
    return {
        "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
        "metadata": {"name": "fake", "namespace": NAMESPACE},
        "spec": {"provider": {"fake": {"data": [
            {"key": "/plinth/greeting", "value": value, "version": "v1"}]}}},
    }


def secret_value(api, key="greeting"):
    secret = api.get_or_none(SECRET_PATH)
    if not secret or key not in (secret.get("data") or {}):
        return None
    return base64.b64decode(secret["data"][key]).decode()


@pytest.fixture(scope="module")
def eso(cluster, tmp_path_factory):
    test_eso = external_secrets.TestExternalSecrets(str(tmp_path_factory.mktemp("eso")), cluster.admin_conf)
    test_eso.start()
    yield test_eso
    test_eso.stop()


def test_crds_are_established_and_v1_is_served(eso, cluster):
    state = eso.state()
    assert "externalsecrets.external-secrets.io" in state["crds"]
    assert "secretstores.external-secrets.io" in state["crds"]
    resources = cluster.api.request("GET", "/apis/external-secrets.io/v1")["resources"]
    assert {"externalsecrets", "secretstores", "clustersecretstores"} <= {r["name"] for r in resources}


def test_controller_listens_on_loopback_only(eso):
    pid = eso.state()["processes"][0]["pid"]
    listening = listening_addresses(pid)
    assert listening, "the controller listens on nothing"
    assert all(address.is_loopback for address in listening), listening


def test_external_secret_becomes_a_secret(eso, cluster):
    api = cluster.api
    api.request("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    api.request("POST", API + "/secretstores", fake_store("hello from the fake store"))
    api.request("POST", API + "/externalsecrets", {
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "greeting", "namespace": NAMESPACE},
        "spec": {
            "refreshInterval": "1s",
            "secretStoreRef": {"name": "fake", "kind": "SecretStore"},
            "target": {"name": "greeting"},
            "data": [{"secretKey": "greeting", "remoteRef": {"key": "/plinth/greeting", "version": "v1"}}],
        },
    })

    store_ready = eventually(lambda: ready(api, API + "/secretstores/fake"), "SecretStore Ready")
    assert store_ready["reason"] == "Valid"
    value = eventually(lambda: (secret_value(api) is not None, secret_value(api)), "Secret greeting")
    assert value == "hello from the fake store"
    synced = eventually(lambda: ready(api, API + "/externalsecrets/greeting"), "ExternalSecret Ready")
    assert synced["reason"] == "SecretSynced"

    secret = api.request("GET", SECRET_PATH)
    owners = secret["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["name"]) for o in owners] == [("ExternalSecret", "greeting")]


def test_a_changed_value_is_synced_again(eso, cluster):
    api = cluster.api
    store = api.request("GET", API + "/secretstores/fake")
    store["spec"] = fake_store("changed in the store")["spec"]
    api.request("PUT", API + "/secretstores/fake", store)
    value = eventually(lambda: (secret_value(api) == "changed in the store", secret_value(api)),
                       "Secret greeting updated")
    assert value == "changed in the store"


def ready(api, path):
    """(whether the object's Ready condition is True, that condition)"""
    obj = api.get_or_none(path)
    found = condition(obj, "Ready")
    return bool(found and found["status"] == "True"), found


def listening_addresses(pid):
    """Local addresses of the TCP sockets ``pid`` listens on (IPv4 and IPv6)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    addresses = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            with open("/proc/%d/net/%s" % (pid, table), encoding="ascii") as handle:
                rows = handle.readlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                addresses.append(hex_address(fields[1].split(":")[0], width))
    return addresses


def hex_address(text, width):
    """/proc/net/tcp's address (32-bit words in host order, little-endian here)."""
    raw = bytes.fromhex(text)
    if width == 8:
        return ipaddress.IPv4Address(raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return address.ipv4_mapped or address

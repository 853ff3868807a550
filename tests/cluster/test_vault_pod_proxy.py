"""The vault stage reaches each Vault pod through the API server's pod proxy, as it does in a cluster.

A real OpenBao server runs inside a network namespace made for the test, at the address a pod
would have (the API server refuses to proxy to loopback), and a Pod object in the real test
API server carries that address. The stage's two actions then initialise, unseal and configure
it through ``/api/v1/namespaces/vault/pods/http:vault-0:8200/proxy``, with nothing but the admin
kubeconfig, and a second run changes nothing.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from testbed import openbao, testcluster

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETNS = "plinth-vault-proxy"
HOST_LINK = "plinth-vp0"
HOST_ADDRESS = "10.254.254.1"
POD_ADDRESS = "10.254.254.2"
PORT = 8200
LABELS = {"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": "vault", "component": "server"}
PROXY = "/api/v1/namespaces/vault/pods/http:vault-0:%d/proxy" % PORT
SERVICE_ACCOUNT = "/api/v1/namespaces/vault/serviceaccounts/default"


def ip(*args):
    subprocess.run(["ip"] + list(args), check=True, capture_output=True)


def remove_network():
    if os.path.exists("/run/netns/" + NETNS):
        ip("netns", "delete", NETNS)  # takes the veth pair with it


@pytest.fixture
def pod_network():
    """A namespace whose one address the API server (on the machine's side of a veth pair) can reach."""
    remove_network()
    ip("netns", "add", NETNS)
    try:
        ip("link", "add", HOST_LINK, "type", "veth", "peer", "name", "eth0", "netns", NETNS)
        ip("addr", "add", HOST_ADDRESS + "/30", "dev", HOST_LINK)
        ip("link", "set", HOST_LINK, "up")
        ip("-n", NETNS, "link", "set", "lo", "up")
        ip("-n", NETNS, "addr", "add", POD_ADDRESS + "/30", "dev", "eth0")
        ip("-n", NETNS, "link", "set", "eth0", "up")
        yield
    finally:
        remove_network()


@pytest.fixture
def vault_server(pod_network, tmp_path):
    """One OpenBao server (Raft storage), sealed and uninitialised, listening at the pod address."""
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "bao.hcl"
    # A pod's server: the address is the pod's, on the chart's ports; no peers to join.
    config.write_text(openbao.server_config(str(data), "vault-0", POD_ADDRESS, PORT, PORT + 1,
                                            unauthed_generate_root=True))
    log = open(tmp_path / "bao.log", "wb")
    process = subprocess.Popen(["ip", "netns", "exec", NETNS, openbao.find_bao(), "server", "-config", str(config)],
                               stdout=log, stderr=subprocess.STDOUT, env=openbao.server_environment())
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def create_pod(api):
    """A Vault server pod as the chart makes it, Running at the pod address (no kubelet here)."""
    try:
        api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": "vault"}})
    except Exception as error:  # already there from an earlier test of the session
        if getattr(error, "status", None) != 409:
            raise
    # The controller manager makes the namespace's default ServiceAccount, which admission wants.
    testcluster.eventually(lambda: (api.get_or_none(SERVICE_ACCOUNT) is not None, None),
                           "the default ServiceAccount of namespace vault", timeout=30)
    api.request("POST", "/api/v1/namespaces/vault/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "vault-0", "labels": LABELS},
        "spec": {"automountServiceAccountToken": False,
                 "containers": [{"name": "vault", "image": "openbao/openbao:2.7.2"}]}})
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    api.request("PATCH", "/api/v1/namespaces/vault/pods/vault-0/status", {"status": {
        "phase": "Running", "podIP": POD_ADDRESS, "podIPs": [{"ip": POD_ADDRESS}],
        "containerStatuses": [{"name": "vault", "ready": False, "started": True, "restartCount": 0,
                               "image": "openbao/openbao:2.7.2", "imageID": "", "state": {"running": {
                                   "startedAt": now}}}]}}, content_type="application/merge-patch+json")


def run_stage(cluster, tmp_path, extra=()):
    playbook = tmp_path / "stage.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          connection: local
          gather_facts: false
          vars:
            pods: {namespace: vault, labels: %s, port: %d, count: 1}
            access:
              kv_mount: secret
              auth_mount: kubernetes
              service_account: vault-secrets-reader
              prefix: plinth-
              consumers: [{namespace: shop, role: plinth-shop, policy: plinth-shop, paths: [apps/shop/db]}]
            seeded: {apps/shop/db: {password: proxied-value-7f3a}}
          tasks:
            - plinth.platform.vault_unseal:
                keys_file: %s
                init: {key_shares: 3, key_threshold: 2}
                pods: "{{ pods }}"
                kubeconfig: %s
                timeout: 30
            - plinth.platform.vault_configure:
                keys_file: %s
                access: "{{ access }}"
                secrets_var: seeded
                kubernetes: {host: "%s", ca_cert: "{{ lookup('file', '%s') }}"}
                pods: "{{ pods }}"
                kubeconfig: %s
                timeout: 30
        """ % (json.dumps(LABELS), PORT, tmp_path / "keys.yml", cluster.admin_conf, tmp_path / "keys.yml",
               cluster.server, os.path.join(cluster.pki, "ca.crt"), cluster.admin_conf)))
    password = tmp_path / "vault-password"
    password.write_text("pod-proxy-test\n")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "collections")]))
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.run([ansible_playbook, str(playbook), "--vault-password-file", str(password)] + list(extra),
                          env=env, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))


def seal_status(cluster):
    return cluster.api.request("GET", PROXY + "/v1/sys/seal-status")


def answering(cluster):
    """A probe for testcluster.eventually: the seal status once the server answers through the proxy."""
    def probe():
        try:
            return True, seal_status(cluster)
        except (testcluster.ApiError, OSError) as error:
            return False, str(error)
    return probe


def test_the_stage_opens_and_configures_vault_through_the_pod_proxy(cluster, vault_server, tmp_path):
    create_pod(cluster.api)
    try:
        before = testcluster.eventually(answering(cluster), "the server answering through the pod proxy", timeout=30)
        assert before["initialized"] is False and before["sealed"] is True

        first = run_stage(cluster, tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "changed=2" in first.stdout
        after = seal_status(cluster)
        assert after["initialized"] is True and after["sealed"] is False
        assert (tmp_path / "keys.yml").read_text().startswith("$ANSIBLE_VAULT")

        second = run_stage(cluster, tmp_path, ["--diff"])
        assert second.returncode == 0, second.stdout + second.stderr
        assert "changed=0" in second.stdout
        assert "proxied-value-7f3a" not in first.stdout + second.stdout
    finally:
        cluster.api.request("DELETE", "/api/v1/namespaces/vault/pods/vault-0")

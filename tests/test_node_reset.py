# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The destructive and Day-2 playbooks check their input before any host is contacted.

The playbook is never run against a reachable host here: it would reset that host. Every
inventory host points at a loopback address where the test itself listens, so the test sees
each connection attempt; a listener closes what it accepts, and the run ends there.
"""

from __future__ import absolute_import, annotations, division, print_function

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading

import pytest
import yaml

__metaclass__ = type

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGING = os.path.join(REPO, "inventories", "staging")
CLUSTER = "staging"  # plinth_cluster_name of the staging inventory
REFUSAL = "node_reset_confirm: got"
RULE = 'must equal the name of the cluster, plinth_cluster_name "%s"' % CLUSTER


class Listeners(object):
    """One TCP listener per address, on the same free port; records who connected."""

    def __init__(self, addresses):
        self.connections = []
        self._sockets = []
        self.port = None
        for address in addresses:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, self.port or 0))
            sock.listen(16)
            sock.settimeout(0.2)
            self.port = sock.getsockname()[1]
            self._sockets.append(sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            for sock in self._sockets:
                try:
                    conn, _ = sock.accept()
                except (socket.timeout, OSError):
                    continue
                self.connections.append(sock.getsockname()[0])
                conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(5)
        for sock in self._sockets:
            sock.close()


def _hosts(body, found):
    for host in (body or {}).get("hosts") or {}:
        found.append(host)
    for child in ((body or {}).get("children") or {}).values():
        _hosts(child, found)
    return found


def _readdress(body, addresses, port):
    for host in list((body or {}).get("hosts") or {}):
        body["hosts"][host] = {"ansible_host": addresses[host], "ansible_port": port,
                               "ansible_user": "nobody", "ansible_connection": "ssh"}
    for child in ((body or {}).get("children") or {}).values():
        _readdress(child, addresses, port)


@pytest.fixture
def lab(tmp_path):
    """The staging inventory with every host on its own listening loopback address."""
    with open(os.path.join(STAGING, "hosts.yml")) as handle:
        hosts = yaml.safe_load(handle)
    names = sorted(_hosts(hosts["all"], []))
    addresses = dict((name, "127.0.0.%d" % (200 + index)) for index, name in enumerate(names))
    listeners = Listeners(sorted(addresses.values()))
    try:
        inventory = tmp_path / "inventory"
        shutil.copytree(os.path.join(STAGING, "group_vars"), str(inventory / "group_vars"))
        _readdress(hosts["all"], addresses, listeners.port)
        with open(str(inventory / "hosts.yml"), "w") as handle:
            yaml.safe_dump(hosts, handle, default_flow_style=False)
        # The endpoint is the single control-plane host's own address, as in staging.
        cluster_file = inventory / "group_vars" / "all" / "cluster.yml"
        with open(str(cluster_file)) as handle:
            cluster = yaml.safe_load(handle)
        assert cluster["plinth_cluster_name"] == CLUSTER
        cluster["plinth_control_plane_endpoint"]["host"] = addresses["stg-cp-1"]
        cluster["plinth_host_network"] = "127.0.0.0/24"  # where the hosts now are
        with open(str(cluster_file), "w") as handle:
            yaml.safe_dump(cluster, handle, default_flow_style=False)
        kubeconfig = tmp_path / "admin.conf"
        kubeconfig.write_text(u"the old cluster's kubeconfig\n")
        yield {"inventory": str(inventory), "hosts": names, "listeners": listeners, "kubeconfig": kubeconfig,
               "tmp": tmp_path}
    finally:
        listeners.close()


def _run(lab, playbook, *extra):
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_HOME": str(lab["tmp"] / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(lab["tmp"] / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_TIMEOUT": "5",
        "PATH": bindir + os.pathsep + env.get("PATH", ""),
    })
    # The controller's copy of the kubeconfig lives in the test's folder, never in build/.
    argv = [os.path.join(bindir, "ansible-playbook"), "-i", lab["inventory"], playbook, "-vvv",
            "-e", "node_reset_kubeconfig_dest=%s" % lab["kubeconfig"]] + list(extra)
    proc = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300)
    return proc.returncode, proc.stdout


def _recap(output):
    return output[output.rindex("PLAY RECAP"):]


def _assert_untouched(lab, output):
    assert lab["listeners"].connections == [], "a host was contacted:\n%s" % output
    recap = _recap(output)
    assert not [host for host in lab["hosts"] if host in recap], "a host took part:\n%s" % output
    assert "ESTABLISH SSH CONNECTION" not in output
    assert lab["kubeconfig"].exists(), "the controller's kubeconfig was removed"


RESET = os.path.join(REPO, "playbooks", "reset.yml")


@pytest.mark.parametrize("confirm", [None, "", "production", "Staging"])
def test_reset_refuses_without_the_cluster_name_and_contacts_no_host(lab, confirm):
    extra = [] if confirm is None else ["-e", "node_reset_confirm=%s" % confirm]
    code, output = _run(lab, RESET, *extra)
    assert code != 0, output
    assert REFUSAL in output and RULE in output, output
    shown = "" if confirm is None else confirm
    assert "node_reset_confirm: got %s;" % json.dumps(shown) in output, output
    assert "Validate the inventory" in output and "localhost" in _recap(output)
    _assert_untouched(lab, output)


def test_role_refuses_on_its_own_before_contacting_a_host(lab):
    """The role checks too, when a playbook of its own runs it without the localhost check."""
    playbook = lab["tmp"] / "reset_nodes.yml"
    playbook.write_text(u"---\n- name: Reset the nodes\n  hosts: k8s_cluster\n  become: true\n"
                        u"  gather_facts: false\n  roles:\n    - role: node_reset\n")
    code, output = _run(lab, str(playbook), "-e", "node_reset_confirm=prod")
    assert code != 0, output
    assert REFUSAL in output and RULE in output, output
    assert lab["listeners"].connections == [], "a host was contacted:\n%s" % output
    assert "ESTABLISH SSH CONNECTION" not in output


def test_with_the_cluster_name_the_run_goes_on_to_the_hosts(lab):
    """The control case: with the right name the run contacts the hosts, so the checks above can fail.

    Each host is a listener that hangs up at once: every host is unreachable, the run ends
    before the controller's play, and nothing anywhere is reset.
    """
    code, output = _run(lab, RESET, "--check", "-e", "node_reset_confirm=%s" % CLUSTER)
    assert code != 0, output
    assert REFUSAL not in output
    assert sorted(set(lab["listeners"].connections)) == sorted(
        "127.0.0.%d" % (200 + index) for index in range(len(lab["hosts"]))), output
    recap = _recap(output)
    assert all(host in recap for host in lab["hosts"]), output
    assert "unreachable=1" in recap
    assert lab["kubeconfig"].exists()


REMOVE = os.path.join(REPO, "playbooks", "remove_node.yml")


@pytest.mark.parametrize("extra, message", [
    ([], 'node_remove_node: got ""; must be a host of the inventory group k8s_cluster (-e node=NAME)'),
    (["-e", "node=stg-nope", "-e", "confirm=stg-nope"],
     'node_remove_node: got "stg-nope"; must be a host of the inventory group k8s_cluster'),
    (["-e", "node=stg-worker-2"], 'node_remove_confirm: got ""; must repeat the node, "stg-worker-2"'),
    (["-e", "node=stg-worker-2", "-e", "confirm=stg-worker-3"],
     'node_remove_confirm: got "stg-worker-3"; must repeat the node, "stg-worker-2"'),
    (["-e", "node=stg-cp-1", "-e", "confirm=stg-cp-1"],
     "node_remove_node: stg-cp-1 is the only control-plane host of the inventory"),
])
def test_remove_node_refuses_before_contacting_a_host(lab, extra, message):
    code, output = _run(lab, REMOVE, *extra)
    assert code != 0, output
    assert message in " ".join(output.split()), output
    _assert_untouched(lab, output)


def test_remove_node_with_confirmation_works_through_the_control_plane_only(lab):
    """The control case: confirmed, the run goes to the control-plane host (which hangs up), never to the node."""
    code, output = _run(lab, REMOVE, "--check", "-e", "node=stg-worker-2", "-e", "confirm=stg-worker-2")
    assert code != 0, output
    assert "must repeat the node" not in output
    cp = "127.0.0.%d" % (200 + sorted(lab["hosts"]).index("stg-cp-1"))
    assert sorted(set(lab["listeners"].connections)) == [cp], output
    assert "stg-cp-1" in _recap(output) and "stg-worker-2" not in _recap(output)


BACKUP = os.path.join(REPO, "playbooks", "etcd_backup.yml")


def test_etcd_backup_refuses_a_host_without_etcd_before_contacting_a_host(lab):
    code, output = _run(lab, BACKUP, "-e", "etcd_backup_from=stg-worker-2")
    assert code != 0, output
    assert ("etcd_backup_from: got 'stg-worker-2'; must be one of the control-plane hosts (stg-cp-1), "
            "which run etcd") in " ".join(output.split()), output
    _assert_untouched(lab, output)


def test_etcd_backup_goes_to_the_first_control_plane_host_only(lab):
    """The control case: by default the run goes to the first control-plane host (which hangs up)."""
    code, output = _run(lab, BACKUP, "--check")
    assert code != 0, output
    assert "must be one of the control-plane hosts" not in output
    cp = "127.0.0.%d" % (200 + sorted(lab["hosts"]).index("stg-cp-1"))
    assert sorted(set(lab["listeners"].connections)) == [cp], output
    assert "stg-cp-1" in _recap(output)


RESTORE = os.path.join(REPO, "playbooks", "etcd_restore.yml")


@pytest.fixture
def snapshot(lab):
    path = lab["tmp"] / "etcd-stg-cp-1-20261204T200737Z.db"
    path.write_bytes(b"a snapshot stand-in: these tests never reach a host")
    return path


@pytest.mark.parametrize("extra, message", [
    ([], 'etcd_restore_confirm: got ""; must equal the name of the cluster, plinth_cluster_name "staging"'),
    (["-e", "etcd_restore_confirm=production"], 'etcd_restore_confirm: got "production"; must equal'),
    (["-e", "etcd_restore_confirm=staging", "-e", "etcd_restore_snapshot="],
     'etcd_restore_snapshot: got ""; must be a snapshot file on the controller'),
    (["-e", "etcd_restore_confirm=staging", "-e", "etcd_restore_snapshot=/nonexistent/etcd.db"],
     'etcd_restore_snapshot: got "/nonexistent/etcd.db"; must be a snapshot file on the controller'),
    (["-e", "etcd_restore_confirm=staging", "-e", "etcd_restore_exclude=stg-cp-1"],
     'etcd_restore_exclude: got ["stg-cp-1"]; must list control-plane hosts (stg-cp-1) and leave at least one'),
    (["-e", "etcd_restore_confirm=staging", "-e", "etcd_restore_exclude=stg-worker-2"],
     'etcd_restore_exclude: got ["stg-worker-2"]; must list control-plane hosts'),
])
def test_etcd_restore_refuses_before_contacting_a_host(lab, snapshot, extra, message):
    code, output = _run(lab, RESTORE, "-e", "etcd_restore_snapshot=%s" % snapshot, *extra)
    assert code != 0, output
    assert message in " ".join(output.split()), output
    _assert_untouched(lab, output)


def test_etcd_restore_refuses_a_snapshot_its_checksum_disowns(lab, snapshot):
    (lab["tmp"] / (snapshot.name + ".sha256")).write_text(u"%s  %s\n" % ("0" * 64, snapshot.name))
    code, output = _run(lab, RESTORE, "-e", "etcd_restore_snapshot=%s" % snapshot, "-e", "etcd_restore_confirm=staging")
    assert code != 0, output
    assert ("its .sha256 says %s: the file is damaged" % ("0" * 64)) in " ".join(output.split()), output
    _assert_untouched(lab, output)


def test_etcd_restore_stops_when_a_control_plane_host_does_not_answer(lab, snapshot):
    """The control case: accepted, the run reaches for the control-plane host only, which hangs up,
    and nothing after that runs."""
    (lab["tmp"] / (snapshot.name + ".sha256")).write_text(u"%s  %s\n" % (
        hashlib.sha256(snapshot.read_bytes()).hexdigest(), snapshot.name))
    code, output = _run(lab, RESTORE, "-e", "etcd_restore_snapshot=%s" % snapshot, "-e", "etcd_restore_confirm=staging")
    assert code != 0, output
    assert "must equal" not in output and "damaged" not in output
    cp = "127.0.0.%d" % (200 + sorted(lab["hosts"]).index("stg-cp-1"))
    assert sorted(set(lab["listeners"].connections)) == [cp], output
    assert "Restore etcd on the control-plane hosts, in step" in output
    assert "Read etcd's manifest" not in output

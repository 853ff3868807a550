# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The real render playbook, killed mid-write or run twice at once, never leaves a mixed tree.

Ansible runs each task in a worker process that leaves the playbook's process group,
so a kill that only signals the group would miss the writer: every process of the
run is found through /proc and killed with SIGKILL. The next render must then leave
exactly the tree a clean render makes: no stray generated file, no temporary file,
no empty folder, and a ledger that lists what is there.
"""

from __future__ import absolute_import, annotations, division, print_function

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from test_invalid_inventories import REPO, materialize, _read_yaml, BASE

__metaclass__ = type

APPS = 160


POOLS = sorted(_read_yaml(os.path.join(BASE, "group_vars", "all", "node_pools.yml"))["plinth_node_pools"])


def _apps(prefix):
    base = _read_yaml(os.path.join(BASE, "group_vars", "all", "apps.yml"))["plinth_apps"][0]
    apps = []
    for index in range(APPS):
        app = dict(base, name="%s-%d" % (prefix, index), namespace=None, ingress=None, secrets={})
        apps.append(app)
    return apps


def _command(inventory, out, tmp_path):
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"),
               PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    argv = [os.path.join(bindir, "ansible-playbook"), "-i", inventory, os.path.join(REPO, "playbooks", "render.yml"),
            "-e", "plinth_render_dir=%s" % out]
    return dict(args=argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                universal_newlines=True)


def _render(inventory, out, tmp_path):
    proc = subprocess.run(timeout=600, **_command(inventory, out, tmp_path))
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


def _tree(root):
    """{relpath: content} of every file under ``root``; empty folders as a None entry."""
    found = {}
    for folder, dirs, names in os.walk(root):
        if not dirs and not names and folder != root:
            found[os.path.relpath(folder, root) + "/"] = None
        for name in names:
            with open(os.path.join(folder, name)) as handle:
                found[os.path.relpath(os.path.join(folder, name), root)] = handle.read()
    return found


def _descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        here = todo.pop()
        found.append(here)
        todo.extend(children.get(here, []))
    return found


def _kill_all(proc):
    """SIGKILL the run and every process it started, whatever their process group."""
    for _round in range(3):
        for pid in _descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    proc.wait()


def _wait_for_writing(out, proc, deadline):
    """The run's processes once the writer has started on ``out`` (a temporary file or a new
    ledger shows), or None. The list is kept fresh while waiting, as finding it takes longer
    than writing a tree does."""
    ledger = os.path.join(out, ".plinth-generated-production")
    before = os.stat(ledger).st_mtime_ns if os.path.exists(ledger) else None
    known, polls = [], 0
    while time.monotonic() < deadline and proc.poll() is None:
        if polls % 25 == 0:
            known = _descendants(proc.pid)
        polls += 1
        try:
            if any(name.startswith(".plinth-tmp-") for name in os.listdir(out)):
                return known
            if os.path.exists(ledger) and os.stat(ledger).st_mtime_ns != before:
                return known
        except OSError:
            pass
        time.sleep(0.001)
    return None


@pytest.fixture(scope="module")
def inventories(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    found = {}
    for name in ("a", "b"):
        # Hundreds of apps are far beyond what the example's pools hold: their capacity is left unstated.
        inventory = materialize({"set": {"plinth_apps": _apps("app-" + name)},
                                 "unset": ["plinth_node_pools.%s.capacity" % pool for pool in POOLS]},
                                str(root / ("inv-" + name)))
        reference = root / ("ref-" + name)
        _render(inventory, str(reference), root)
        found[name] = (inventory, _tree(str(reference)))
    return found


def test_a_killed_render_is_repaired_by_the_next(inventories, tmp_path):
    out = tmp_path / "out"
    _render(inventories["a"][0], str(out), tmp_path)
    rng = random.Random(3)
    half_written = 0
    current = "a"
    for attempt in range(8):
        # The killed run must have something to change; the repairing one may go either way.
        killed = "b" if current == "a" else "a"
        repair = current = rng.choice("ab")
        proc = subprocess.Popen(**_command(inventories[killed][0], str(out), tmp_path))
        known = _wait_for_writing(str(out), proc, time.monotonic() + 120)
        if known:
            time.sleep(rng.uniform(0, 0.008))
            for pid in known:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        _kill_all(proc)
        # Left neither as the last render made it nor as the killed one would have: cut mid-write.
        half_written += _tree(str(out)) not in (inventories["a"][1], inventories["b"][1])
        _render(inventories[repair][0], str(out), tmp_path)
        found = _tree(str(out))
        wanted = inventories[repair][1]
        assert sorted(set(found) ^ set(wanted)) == [], "attempt %d: stray or missing paths" % attempt
        assert found == wanted, "attempt %d: content differs" % attempt
    assert half_written >= 4, "most kills must land while the tree is being written (%d did)" % half_written


def test_two_renders_at_once_leave_one_whole_tree(inventories, tmp_path):
    out = tmp_path / "out"
    procs = [subprocess.Popen(**_command(inventories[name][0], str(out), tmp_path)) for name in ("a", "b")]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    found = _tree(str(out))
    assert found in (inventories["a"][1], inventories["b"][1]), "the two renders mixed their trees"

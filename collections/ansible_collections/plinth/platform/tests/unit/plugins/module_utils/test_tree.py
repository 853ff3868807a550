# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""tree: the writer stays below its folder, survives a kill at any point, and never mixes two runs."""

from __future__ import absolute_import, annotations, division, print_function

import fcntl
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import tree

__metaclass__ = type

# The folder that holds ansible_collections/, for the writer's own process.
COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(tree.__file__), *([os.pardir] * 5)))
WANTED = {"clusters/env/root.yaml": "kind: Application\n", "infra/kong/values-env.yaml": "replicaCount: 2\n"}


def _walk(root):
    """{relpath: content} of every file under ``root``, links included as 'link -> target'."""
    found = {}
    for folder, dirs, names in os.walk(root):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "link -> %s" % os.readlink(path)
            else:
                with open(path) as handle:
                    found[rel] = handle.read()
    return found


@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "values-env.yaml").write_text("precious\n")
    return folder


def test_a_linked_folder_is_refused_and_nothing_outside_changes(tmp_path, outside):
    dest = tmp_path / "tree"
    (dest / "infra").mkdir(parents=True)
    os.symlink(str(outside), str(dest / "infra" / "kong"))
    with pytest.raises(tree.TreeError, match="is a symbolic link"):
        tree.sync(str(dest), WANTED, "env")
    assert _walk(str(outside)) == {"values-env.yaml": "precious\n"}
    assert not (dest / "clusters").exists(), "nothing is written when one path is refused"


def test_a_linked_file_is_refused_not_read_and_not_replaced(tmp_path, outside):
    dest = tmp_path / "tree"
    (dest / "infra" / "kong").mkdir(parents=True)
    os.symlink(str(outside / "values-env.yaml"), str(dest / "infra" / "kong" / "values-env.yaml"))
    with pytest.raises(tree.TreeError, match="is a symbolic link"):
        tree.sync(str(dest), WANTED, "env", check=True)
    with pytest.raises(tree.TreeError, match="is a symbolic link"):
        tree.sync(str(dest), WANTED, "env")
    assert (outside / "values-env.yaml").read_text() == "precious\n"
    assert os.path.islink(str(dest / "infra" / "kong" / "values-env.yaml"))


@pytest.mark.parametrize("entry", ["../outside/values-env.yaml", "/etc/hostname", "infra/../../outside/x"])
def test_a_ledger_pointing_outside_prunes_nothing(tmp_path, outside, entry):
    dest = tmp_path / "tree"
    dest.mkdir()
    (dest / tree.manifest_name("env")).write_text("# ledger\n%s\n" % entry)
    with pytest.raises(tree.TreeError, match="refusing"):
        tree.sync(str(dest), WANTED, "env")
    assert (outside / "values-env.yaml").read_text() == "precious\n"


def test_a_linked_ledger_is_refused(tmp_path, outside):
    dest = tmp_path / "tree"
    dest.mkdir()
    os.symlink(str(outside / "values-env.yaml"), str(dest / tree.manifest_name("env")))
    with pytest.raises(tree.TreeError, match="ledger is not a regular file"):
        tree.sync(str(dest), WANTED, "env")
    assert (outside / "values-env.yaml").read_text() == "precious\n"


def test_a_pruned_path_behind_a_link_is_refused(tmp_path, outside):
    dest = tmp_path / "tree"
    tree.sync(str(dest), WANTED, "env")
    os.rename(str(dest / "infra"), str(tmp_path / "moved"))
    os.symlink(str(outside), str(dest / "infra"))
    with pytest.raises(tree.TreeError, match="is a symbolic link"):
        tree.sync(str(dest), {"clusters/env/root.yaml": "kind: Application\n"}, "env")
    assert _walk(str(outside)) == {"values-env.yaml": "precious\n"}


def test_modes_do_not_follow_the_umask(tmp_path):
    old = os.umask(0)
    try:
        tree.sync(str(tmp_path / "tree"), WANTED, "env")
    finally:
        os.umask(old)
    for folder, dirs, names in os.walk(str(tmp_path / "tree")):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o755, folder
        for name in names:
            assert stat.S_IMODE(os.stat(os.path.join(folder, name)).st_mode) == 0o644, name


def test_a_second_writer_waits_for_the_lock(tmp_path):
    dest = tmp_path / "tree"
    dest.mkdir()
    fd = os.open(str(dest), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    threading.Timer(0.5, os.close, [fd]).start()
    started = time.monotonic()
    tree.sync(str(dest), WANTED, "env")
    assert time.monotonic() - started >= 0.4
    assert _walk(str(dest))["infra/kong/values-env.yaml"] == "replicaCount: 2\n"


def test_a_held_lock_times_out_with_a_clear_error(tmp_path):
    dest = tmp_path / "tree"
    dest.mkdir()
    fd = os.open(str(dest), os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        writer = tree.Tree(str(dest), "env")
        with pytest.raises(tree.TreeError, match="another render holds the tree's lock"):
            writer.lock(create=False, timeout=0.2)
    finally:
        os.close(fd)


def test_secrets_stop_the_write_before_anything_is_touched(tmp_path):
    files = dict(WANTED, **{"infra/app/values-env.yaml": "env:\n- {name: DB_PASSWORD, value: hunter2}\n"})
    with pytest.raises(tree.SecretInTree) as caught:
        tree.sync(str(tmp_path / "tree"), files, "env", check=True)
    assert "infra/app/values-env.yaml env[0].value: secret-env" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert not (tmp_path / "tree").exists()


# --- crashes ---------------------------------------------------------------------

WRITER = textwrap.dedent("""\
    import json, sys
    from ansible_collections.plinth.platform.plugins.module_utils import tree
    with open(sys.argv[2]) as handle:
        files = json.load(handle)
    print("writing", flush=True)
    tree.sync(sys.argv[1], files, "env")
""")


def _files(seed, count):
    """A tree of ``count`` apps, different in content and in names for each seed."""
    files = {"clusters/env/root.yaml": "seed: %d\n" % seed}
    for index in range(count):
        files["apps/app-%d-%d/values-env.yaml" % (seed % 3, index)] = "seed: %d\nindex: %d\n" % (seed, index)
    return files


def _run_writer(dest, files, tmp_path, kill_after=None):
    spec = tmp_path / ("files-%d.json" % random.randrange(1 << 30))
    spec.write_text(json.dumps(files))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(dest), str(spec)], env=env,
                            stdout=subprocess.PIPE, universal_newlines=True)
    started = None
    if proc.stdout.readline() == "writing\n":
        started = time.monotonic()
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
    proc.stdout.close()
    return proc.wait(), time.monotonic() - started


def test_a_kill_at_any_point_is_repaired_by_the_next_render(tmp_path):
    """SIGKILL the writer at random points, switching between trees; each next render repairs all."""
    dest = tmp_path / "tree"
    rng = random.Random(20261203)
    assert _run_writer(dest, _files(0, 400), tmp_path)[0] == 0
    # The fastest of three whole writes: a kill point drawn below it lands mid-write even when
    # later writes run faster than the first (a warm page cache, an idle machine).
    runs = [_run_writer(dest, _files(1, 400), tmp_path) for _attempt in range(3)]
    assert [code for code, _took in runs] == [0, 0, 0]
    full = min(took for _code, took in runs)
    kills = 0
    for attempt in range(20):
        seed = attempt + 2
        code, _took = _run_writer(dest, _files(seed, 400), tmp_path, kill_after=rng.uniform(0, full * 0.7))
        kills += code == -signal.SIGKILL
        wanted = _files(seed + 100, 300 + attempt)
        assert _run_writer(dest, wanted, tmp_path)[0] == 0
        found = _walk(str(dest))
        ledger = found.pop(tree.manifest_name("env"))
        assert found == wanted, "attempt %d: stray or missing files: %s" % (
            attempt, sorted(set(found) ^ set(wanted))[:5])
        assert ledger == tree.manifest_text(wanted)
        empty = [folder for folder, dirs, names in os.walk(str(dest)) if not dirs and not names]
        assert empty == [], "attempt %d: empty folders left: %s" % (attempt, empty[:3])
    assert kills >= 8, "most runs must really be killed mid-way (%d were)" % kills

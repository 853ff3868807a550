# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""gitops_tree (an action plugin): writes only what changed, prunes only what it wrote, honours check and diff."""

from __future__ import absolute_import, annotations, division, print_function

import os
from unittest.mock import MagicMock

import pytest

from ansible.errors import AnsibleActionFail
from ansible.playbook.task import Task

from ansible_collections.plinth.platform.plugins.action.gitops_tree import ActionModule

__metaclass__ = type

PROD = {
    "clusters/production/root.yaml": "kind: Application\n",
    "infra/kong/values-production.yaml": "replicaCount: 3\n",
}


def _action(dest, files, scope=None, check=False, diff=False, spec=None):
    task = Task()
    task.args = {"dest": str(dest)}
    if files is not None:
        task.args["files"] = files
    if spec is not None:
        task.args["spec"] = spec
    if scope is not None:
        task.args["scope"] = scope
    task.check_mode = check
    task.diff = diff
    return ActionModule(task, connection=MagicMock(), play_context=MagicMock(check_mode=check, diff=diff),
                        loader=MagicMock(), templar=MagicMock(), shared_loader_obj=MagicMock())


@pytest.fixture
def run():
    """run(dest, files, scope=..., check=False, diff=False, spec=None) -> the action's result."""

    def _run(dest, files, scope=None, check=False, diff=False, spec=None):
        result = _action(dest, files, scope, check, diff, spec).run(task_vars={})
        assert not result.get("failed"), result
        return result

    return _run


@pytest.fixture
def fail():
    """fail(dest, files) -> the failure message."""

    def _fail(dest, files):
        with pytest.raises(AnsibleActionFail) as exc:
            _action(dest, files).run(task_vars={})
        return {"failed": True, "msg": str(exc.value)}

    return _fail


def _read(path):
    with open(str(path)) as handle:
        return handle.read()


def _snapshot(root):
    """relpath -> content of every file under root (manifests included)."""
    found = {}
    for folder, _dirs, names in os.walk(str(root)):
        for name in names:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, str(root))] = _read(full)
    return found


def test_create_writes_every_file_and_the_manifest(run, tmp_path):
    dest = tmp_path / "tree"
    result = run(dest, PROD, scope="production")
    assert result["changed"] is True
    assert result["created"] == sorted(PROD)
    assert (result["updated"], result["removed"], result["unchanged"]) == ([], [], 0)
    for relpath, content in PROD.items():
        assert _read(dest / relpath) == content
    manifest = _read(dest / ".plinth-generated-production").splitlines()
    assert [line for line in manifest if not line.startswith("#")] == sorted(PROD)


def test_second_run_changes_nothing(run, tmp_path):
    run(tmp_path, PROD)
    before = _snapshot(tmp_path)
    result = run(tmp_path, PROD)
    assert result["changed"] is False
    assert (result["created"], result["updated"], result["removed"]) == ([], [], [])
    assert result["unchanged"] == len(PROD)
    assert _snapshot(tmp_path) == before


def test_update_rewrites_only_the_file_that_differs(run, tmp_path):
    run(tmp_path, PROD)
    untouched = tmp_path / "clusters/production/root.yaml"
    mtime = os.stat(str(untouched)).st_mtime_ns
    wanted = dict(PROD, **{"infra/kong/values-production.yaml": "replicaCount: 5\n"})
    result = run(tmp_path, wanted)
    assert result["changed"] is True
    assert result["updated"] == ["infra/kong/values-production.yaml"]
    assert (result["created"], result["removed"], result["unchanged"]) == ([], [], 1)
    assert _read(tmp_path / "infra/kong/values-production.yaml") == "replicaCount: 5\n"
    assert os.stat(str(untouched)).st_mtime_ns == mtime


def test_prune_removes_generated_files_but_not_hand_made_ones(run, tmp_path):
    run(tmp_path, PROD)
    (tmp_path / "infra/notes.md").write_text(u"written by a person\n")
    (tmp_path / "infra/kong/extra.yaml").write_text(u"also by a person\n")
    wanted = {"clusters/production/root.yaml": PROD["clusters/production/root.yaml"]}
    result = run(tmp_path, wanted)
    assert result["changed"] is True
    assert result["removed"] == ["infra/kong/values-production.yaml"]
    assert not (tmp_path / "infra/kong/values-production.yaml").exists()
    assert _read(tmp_path / "infra/notes.md") == "written by a person\n"
    assert _read(tmp_path / "infra/kong/extra.yaml") == "also by a person\n"


def test_prune_removes_folders_left_empty(run, tmp_path):
    run(tmp_path, PROD)
    run(tmp_path, {"clusters/production/root.yaml": "kind: Application\n"})
    assert not (tmp_path / "infra").exists()
    assert (tmp_path / "clusters/production/root.yaml").exists()


def test_emptying_a_scope_removes_its_files_and_keeps_hand_made_ones(run, tmp_path):
    (tmp_path / "README.md").write_text(u"by hand\n")
    run(tmp_path, PROD)
    result = run(tmp_path, {})
    assert sorted(result["removed"]) == sorted(PROD)
    assert _read(tmp_path / "README.md") == "by hand\n"


def test_check_mode_reports_and_writes_nothing(run, tmp_path):
    dest = tmp_path / "tree"
    result = run(dest, PROD, check=True)
    assert result["changed"] is True
    assert result["created"] == sorted(PROD)
    assert not dest.exists()


def test_check_mode_over_an_existing_tree_writes_nothing(run, tmp_path):
    run(tmp_path, PROD)
    before = _snapshot(tmp_path)
    wanted = {"infra/kong/values-production.yaml": "replicaCount: 5\n", "apps/new/values-production.yaml": "a: 1\n"}
    result = run(tmp_path, wanted, check=True)
    assert result["changed"] is True
    assert result["created"] == ["apps/new/values-production.yaml"]
    assert result["updated"] == ["infra/kong/values-production.yaml"]
    assert result["removed"] == ["clusters/production/root.yaml"]
    assert _snapshot(tmp_path) == before


def test_diff_shows_created_updated_and_removed_files(run, tmp_path):
    run(tmp_path, PROD)
    wanted = {"infra/kong/values-production.yaml": "replicaCount: 5\n", "apps/new/values-production.yaml": "a: 1\n"}
    result = run(tmp_path, wanted, check=True, diff=True)
    by_file = dict(((d["before_header"], d["after_header"]), (d["before"], d["after"])) for d in result["diff"])
    assert by_file == {
        ("/dev/null", "apps/new/values-production.yaml"): ("", "a: 1\n"),
        ("infra/kong/values-production.yaml", "infra/kong/values-production.yaml"): ("replicaCount: 3\n", "replicaCount: 5\n"),
        ("clusters/production/root.yaml", "/dev/null"): ("kind: Application\n", ""),
    }


def test_no_diff_when_nothing_changes(run, tmp_path):
    run(tmp_path, PROD)
    result = run(tmp_path, PROD, diff=True)
    assert result["changed"] is False
    assert "diff" not in result


@pytest.mark.parametrize("relpath", ["../escaped.yaml", "infra/../../escaped.yaml", "/tmp/escaped.yaml",
                                     ".plinth-generated-production", ""])
def test_paths_that_leave_the_tree_are_rejected(fail, tmp_path, relpath):
    dest = tmp_path / "tree"
    result = fail(dest, {relpath: "x: 1\n", "ok.yaml": "x: 1\n"})
    assert result["failed"] is True
    assert "refusing to write %r" % relpath in result["msg"]
    assert not (tmp_path / "escaped.yaml").exists()
    assert not dest.exists()


def test_two_scopes_share_a_tree_without_pruning_each_other(run, tmp_path):
    staging = {"clusters/staging/root.yaml": "kind: Application\n",
               "infra/kong/values-staging.yaml": "replicaCount: 1\n"}
    run(tmp_path, PROD, scope="production")
    run(tmp_path, staging, scope="staging")
    result = run(tmp_path, {"clusters/production/root.yaml": "kind: Application\n"}, scope="production")
    assert result["removed"] == ["infra/kong/values-production.yaml"]
    for relpath, content in staging.items():
        assert _read(tmp_path / relpath) == content
    result = run(tmp_path, {}, scope="staging")
    assert sorted(result["removed"]) == sorted(staging)
    assert _read(tmp_path / "clusters/production/root.yaml") == "kind: Application\n"
    assert (tmp_path / ".plinth-generated-production").exists()


def test_file_content_is_written_as_utf8_text(run, tmp_path):
    run(tmp_path, {"a.yaml": u"name: caf\u00e9\n"})
    with open(str(tmp_path / "a.yaml"), "rb") as handle:
        assert handle.read() == u"name: caf\u00e9\n".encode("utf-8")


def test_spec_renders_the_tree_and_returns_its_summary(run, tmp_path):
    from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec
    from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

    spec = build_spec(*load_inventory("production"))
    result = run(tmp_path, None, spec=spec)
    assert result["changed"] and result["summary"]["environment"] == "production"
    assert os.path.exists(str(tmp_path / ".plinth-generated-production"))
    assert "clusters/production/root.yaml" in result["created"]
    assert run(tmp_path, None, spec=spec)["changed"] is False

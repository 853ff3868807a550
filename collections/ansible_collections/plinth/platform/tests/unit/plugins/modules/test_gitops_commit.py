# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""gitops_commit against real git: a clone of a bare repository, as the gitops role uses it."""

from __future__ import absolute_import, annotations, division, print_function

import json
import os
import subprocess

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.plinth.platform.plugins.module_utils import tree
from ansible_collections.plinth.platform.plugins.modules import gitops_commit

__metaclass__ = type

ROOT_APP = "kind: Application\napiVersion: argoproj.io/v1alpha1\nmetadata: {name: root}\n"
VALUES = "replicaCount: 3\n"


def git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="Someone", GIT_AUTHOR_EMAIL="someone@example.com",
               GIT_COMMITTER_NAME="Someone", GIT_COMMITTER_EMAIL="someone@example.com")
    return subprocess.run(["git"] + list(args), cwd=str(cwd), env=env, check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """(bare remote, clone) where the remote's main branch holds one commit made by a person."""
    remote, seed, clone = tmp_path / "remote.git", tmp_path / "seed", tmp_path / "clone"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(remote))
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(seed))
    (seed / "README.md").write_text("GitOps repository\n")
    git(seed, "add", "README.md")
    git(seed, "commit", "--quiet", "-m", "Start")
    git(seed, "push", "--quiet", str(remote), "main")
    git(tmp_path, "clone", "--quiet", str(remote), str(clone))
    return remote, clone


def render(clone, files, scope="test"):
    # The writer itself, without the secret check that sync() runs first: these tests put
    # secrets in the clone on purpose, as a hand edit would.
    writer = tree.Tree(str(clone), scope)
    writer.apply(files, writer.plan(files))


def run_module(args, check=False, diff=False):
    module_args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            gitops_commit.main()


@pytest.fixture
def commit(capsys):
    """commit(clone, check=False, **args) -> the module's result."""

    def _commit(clone, check=False, diff=False, **args):
        run_module(dict({"path": str(clone), "scope": "test", "branch": "main"}, **args), check, diff)
        return json.loads(capsys.readouterr().out)

    return _commit


def log(cwd, ref="HEAD"):
    return git(cwd, "log", "--format=%an|%s", ref).splitlines()


def test_commits_and_pushes_only_when_the_render_changed(repo, commit):
    remote, clone = repo
    render(clone, {"clusters/test/root.yaml": ROOT_APP, "infra/a/values-test.yaml": VALUES})
    result = commit(clone, push=True, subject="Render environment test")
    assert result["changed"] and result["committed"] and result["pushed"]
    assert result["files"] == {"clusters/test/root.yaml": "created", "infra/a/values-test.yaml": "created",
                               ".plinth-generated-test": "created"}
    assert log(remote, "main") == ["Plinth|Render environment test (3 created)", "Someone|Start"]
    body = git(remote, "log", "-1", "--format=%b", "main")
    assert "created infra/a/values-test.yaml" in body

    again = commit(clone, push=True, subject="Render environment test")
    assert not again["changed"] and not again["committed"] and not again["pushed"]
    assert len(log(remote, "main")) == 2


def test_stray_files_stay_out_of_the_commit(repo, commit):
    _remote, clone = repo
    (clone / "notes.txt").write_text("mine\n")
    (clone / "README.md").write_text("edited by hand\n")
    git(clone, "add", "README.md")  # even a staged change of someone else's stays out
    render(clone, {"clusters/test/root.yaml": ROOT_APP})
    result = commit(clone)
    assert set(result["files"]) == {"clusters/test/root.yaml", ".plinth-generated-test"}
    committed = git(clone, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(committed) == [".plinth-generated-test", "clusters/test/root.yaml"]
    status = git(clone, "status", "--porcelain")
    assert "M  README.md" in status and "?? notes.txt" in status


def test_removed_files_are_committed_as_removals(repo, commit):
    _remote, clone = repo
    render(clone, {"clusters/test/root.yaml": ROOT_APP, "infra/a/values-test.yaml": VALUES})
    commit(clone)
    render(clone, {"clusters/test/root.yaml": ROOT_APP})
    result = commit(clone)
    assert result["files"] == {"infra/a/values-test.yaml": "removed", ".plinth-generated-test": "updated"}
    assert "infra/a/values-test.yaml" not in git(clone, "ls-files")
    assert git(clone, "status", "--porcelain") == ""


def test_a_secret_stops_the_commit(repo, commit):
    remote, clone = repo
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter22}\n"
    render(clone, {"clusters/test/root.yaml": ROOT_APP, "infra/a/test/secret-db.yaml": secret})
    result = commit(clone, push=True)
    assert result["failed"]
    assert "refusing to commit" in result["msg"] and "infra/a/test/secret-db.yaml: secret-object: a Kubernetes Secret" in result["msg"]
    assert "secret-db.yaml stringData.password: secret-key: a literal value under a secret-like key" in result["msg"]
    assert "hunter22" not in json.dumps(result)
    assert len(log(clone)) == 1 and len(log(remote, "main")) == 1  # nothing committed, nothing pushed


def test_check_mode_changes_neither_the_clone_nor_the_remote(repo, commit):
    remote, clone = repo
    render(clone, {"clusters/test/root.yaml": ROOT_APP})
    before = git(clone, "status", "--porcelain")
    result = commit(clone, check=True, diff=True, push=True)
    assert result["changed"] and result["committed"] and result["pushed"]
    assert "created clusters/test/root.yaml" in result["diff"]["after"]
    assert git(clone, "status", "--porcelain") == before
    assert len(log(clone)) == 1 and len(log(remote, "main")) == 1


def test_unpushed_commit_is_pushed_later(repo, commit):
    remote, clone = repo
    render(clone, {"clusters/test/root.yaml": ROOT_APP})
    assert commit(clone, push=False)["committed"]
    assert len(log(remote, "main")) == 1
    result = commit(clone, push=True)
    assert result["changed"] and result["pushed"] and not result["committed"]
    assert git(remote, "rev-parse", "main") == git(clone, "rev-parse", "HEAD")


def test_remote_that_moved_on_stops_before_committing(repo, commit, tmp_path):
    remote, clone = repo
    other = tmp_path / "other"
    git(tmp_path, "clone", "--quiet", str(remote), str(other))
    (other / "README.md").write_text("changed elsewhere\n")
    git(other, "commit", "--quiet", "-am", "Elsewhere")
    git(other, "push", "--quiet", "origin", "main")
    render(clone, {"clusters/test/root.yaml": ROOT_APP})
    result = commit(clone, push=True)
    assert result["failed"] and "has commits the clone lacks" in result["msg"]
    assert len(log(clone)) == 1


def test_tree_in_a_folder_of_the_repository(repo, commit):
    _remote, clone = repo
    render(clone / "platform", {"clusters/test/root.yaml": ROOT_APP})
    result = commit(clone, subdir="platform")
    assert set(result["files"]) == {"platform/clusters/test/root.yaml", "platform/.plinth-generated-test"}


def test_path_must_be_a_clone(tmp_path, commit):
    result = commit(tmp_path)
    assert result["failed"] and "must be the root of a git clone" in result["msg"]

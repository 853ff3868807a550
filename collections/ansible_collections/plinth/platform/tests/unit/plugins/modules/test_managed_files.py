# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""managed_files on a real file system: what it writes, what it reports, what check mode leaves alone."""

from __future__ import absolute_import, annotations, division, print_function

import grp
import json
import os
import pwd
import stat

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.plinth.platform.plugins.modules import managed_files

__metaclass__ = type

MARKER = "# Managed by Plinth (role test)"
USER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def entry(path, content=None, **extra):
    """A files entry owned by whoever runs the test (root is not needed)."""
    item = dict(path=str(path), owner=USER, group=GROUP, **extra)
    if content is not None:
        item["content"] = content
    return item


@pytest.fixture
def apply(capsys):
    """apply(files, prune=(), check=False, diff=False) -> (exit code, the module's result)."""

    def _apply(files, prune=(), check=False, diff=False):
        args = dict(files=files, prune=list(prune), _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(args):
            with pytest.raises(SystemExit) as exit_:
                managed_files.main()
        return exit_.value.code, json.loads(capsys.readouterr().out)

    return _apply


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def test_writes_files_and_their_folders_then_changes_nothing(tmp_path, apply):
    conf, unit = tmp_path / "etc" / "a.conf", tmp_path / "lib" / "deep" / "b.service"
    files = [entry(conf, "one\n"), entry(unit, "[Unit]\n", mode="0600")]

    code, result = apply(files)
    assert code == 0 and result["changed"]
    assert result["changed_paths"] == [str(tmp_path / "etc"), str(conf), str(tmp_path / "lib"),
                                       str(tmp_path / "lib" / "deep"), str(unit)]
    assert conf.read_text() == "one\n" and mode(conf) == 0o644
    assert unit.read_text() == "[Unit]\n" and mode(unit) == 0o600
    assert mode(tmp_path / "lib" / "deep") == 0o755

    code, result = apply(files)
    assert code == 0 and not result["changed"] and result["changed_paths"] == []


def test_rewrites_only_the_file_whose_content_differs(tmp_path, apply):
    first, second = tmp_path / "first", tmp_path / "second"
    apply([entry(first, "1\n"), entry(second, "2\n")])
    before = os.stat(str(first)).st_ino

    result = apply([entry(first, "1\n"), entry(second, "two\n")], diff=True)[1]
    assert result["changed_paths"] == [str(second)]
    assert second.read_text() == "two\n" and os.stat(str(first)).st_ino == before
    assert result["diff"] == [dict(before_header=str(second), after_header=str(second), before="2\n", after="two\n")]
    assert not [name for name in os.listdir(str(tmp_path)) if name.startswith(".")], "a staged file was left behind"


def test_a_mode_change_alone_is_a_change(tmp_path, apply):
    path = tmp_path / "f"
    apply([entry(path, "x\n")])
    os.chmod(str(path), 0o666)

    result = apply([entry(path, "x\n")])[1]
    assert result["changed_paths"] == [str(path)] and mode(path) == 0o644


def test_a_rewritten_file_gets_the_wanted_mode_not_the_one_it_replaced(tmp_path, apply):
    # atomic_move hands the new file the old one's mode; the wanted one is set after it.
    path = tmp_path / "f"
    apply([entry(path, "old\n")])
    os.chmod(str(path), 0o666)

    result = apply([entry(path, "new\n", mode="0600")])[1]
    assert result["changed_paths"] == [str(path)]
    assert path.read_text() == "new\n" and mode(path) == 0o600
    assert not apply([entry(path, "new\n", mode="0600")])[1]["changed"]


def test_a_failed_move_names_the_file_and_leaves_nothing_staged(tmp_path, apply, monkeypatch):
    def refuse(module, src, dest, **kwargs):
        raise Exception("Could not replace %r with %r." % (dest, src))

    monkeypatch.setattr(managed_files.AnsibleModule, "atomic_move", refuse)
    code, result = apply([entry(tmp_path / "a.conf", "x\n")])
    assert code == 1 and result["msg"].startswith("%s: could not be written: Could not replace" % (tmp_path / "a.conf"))
    assert os.listdir(str(tmp_path)) == []


def test_check_mode_reports_every_change_and_touches_nothing(tmp_path, apply):
    existing, new = tmp_path / "existing", tmp_path / "new" / "file"
    apply([entry(existing, "old\n")])
    os.chmod(str(existing), 0o600)

    result = apply([entry(existing, "new\n"), entry(new, "n\n"), entry(tmp_path / "dir", state="directory")],
                   check=True, diff=True)[1]
    assert result["changed"]
    assert result["changed_paths"] == [str(existing), str(tmp_path / "new"), str(new), str(tmp_path / "dir")]
    assert existing.read_text() == "old\n" and mode(existing) == 0o600
    assert sorted(os.listdir(str(tmp_path))) == ["existing"]
    assert [d["after"] for d in result["diff"] if d["after_header"] == str(existing)][0] == "new\n"


def test_absent_removes_a_file_and_is_quiet_when_it_is_gone(tmp_path, apply):
    path = tmp_path / "dropin.conf"
    path.write_text("x")

    result = apply([entry(path, state="absent")])[1]
    assert result["changed_paths"] == [str(path)] and not path.exists()
    result = apply([entry(path, state="absent")])[1]
    assert not result["changed"]


def test_prune_removes_only_marked_files_that_are_not_listed(tmp_path, apply):
    certs = tmp_path / "certs.d"
    for registry in ("docker.io", "old.example.com", "someone-else.example.com"):
        (certs / registry).mkdir(parents=True)
    (certs / "docker.io" / "hosts.toml").write_text(MARKER + "\nold\n")
    (certs / "old.example.com" / "hosts.toml").write_text(MARKER + "\n")
    (certs / "someone-else.example.com" / "hosts.toml").write_text("server = 'x'\n")

    result = apply([entry(certs / "docker.io" / "hosts.toml", MARKER + "\nnew\n")],
                   prune=[dict(glob=str(certs / "*" / "hosts.toml"), marker=MARKER)])[1]
    assert result["changed_paths"] == [str(certs / "docker.io" / "hosts.toml"), str(certs / "old.example.com" / "hosts.toml")]
    assert not (certs / "old.example.com" / "hosts.toml").exists()
    assert (certs / "someone-else.example.com" / "hosts.toml").exists()
    assert (certs / "docker.io" / "hosts.toml").read_text() == MARKER + "\nnew\n"


@pytest.mark.parametrize("files,prune,message", [
    ([dict(path="relative/file", content="x")], [], "files: path 'relative/file' is relative"),
    ([dict(path="/tmp/x", content="x"), dict(path="/tmp/./x", content="y")], [], "files: /tmp/./x is listed twice"),
    ([dict(path="/tmp/x", content="x", mode="rw-r--r--")], [], "mode 'rw-r--r--' of /tmp/x is not an octal mode"),
    ([], [dict(glob="*.toml", marker="m")], "prune: glob '*.toml' is relative"),
    ([dict(path="/tmp/x")], [], "state is file but all of the following are missing: content"),
])
def test_bad_input_fails_before_anything_is_written(tmp_path, apply, files, prune, message):
    written = entry(tmp_path / "first", "x\n")
    code, result = apply([written] + [dict(f, owner=USER, group=GROUP) for f in files], prune)
    assert code == 1 and result["failed"]
    assert message in result["msg"]
    assert not (tmp_path / "first").exists()


def test_a_folder_where_a_file_is_wanted_fails_and_names_it(tmp_path, apply):
    (tmp_path / "taken").mkdir()
    code, result = apply([entry(tmp_path / "taken", "x\n")])
    assert code == 1 and "%s: wanted a file, found a folder" % (tmp_path / "taken") in result["msg"]

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The bad-input corpus: every inventory under tests/invalid/ must be rejected.

Each case is ``tests/invalid/<case>/case.yml``, an edit on top of the production
example inventory (so cases stay short and follow the example as it changes):

    description: what is wrong, in one line
    set:      {dotted.path: value}    # plinth_apps[0].name, plinth_components.kong.replicas;
                                      # a list index equal to the length appends
    unset:    [dotted.path]           # remove a key or a list item
    rename:   {dotted.path: new_key}  # move a value to a new key of the same parent (typos)
    groups:   {group: [host, ...]}    # replace a group's members (null removes the group)
    hostvars: {host: {var: value}}    # merged into the host wherever it appears
    expect:   [substring, ...]        # must ALL appear in the error output
    expect_e2e: [substring, ...]      # must also appear in the playbook's output (templating happens there)
    forbid:   [substring, ...]        # must NOT appear anywhere: output, render folder (secret values)
    render_dir: [step, ...]           # the render folder as a hostile user prepared it, before the run:
                                      #   {link: relpath, to: target}   a symbolic link; a target under
                                      #       outside/ points at the sentinel folder next to the render folder
                                      #   {file: relpath, content: text} a file (a tampered ledger, say)

Path segments are split on ``.``: keys that themselves contain dots (label keys)
are edited by setting their whole parent mapping.

Two layers. Every case without ``render_dir`` is an inventory problem: ``build_spec``
must raise ``SpecError`` carrying every expected string. And every case runs the real
``ansible-playbook playbooks/render.yml --diff -vvv``, which must fail with the
expected messages, leave the render folder as it was, write nothing anywhere else
(the sentinel folder ``outside/`` and the inventory are compared byte for byte),
and show no forbidden string in its output or in any file.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy
import hashlib
import os
import re
import subprocess
import sys

import pytest
import yaml

__metaclass__ = type

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "invalid")
BASE = os.path.join(REPO, "inventories", "production")
CASE_KEYS = frozenset(("description", "set", "unset", "rename", "groups", "hostvars",
                       "expect", "expect_e2e", "forbid", "render_dir"))

from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError  # noqa: E402
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec  # noqa: E402
# The unit tests' inventory reader, so both suites read an inventory the same way.
from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory  # noqa: E402


def _cases():
    return sorted(name for name in os.listdir(CORPUS)
                  if os.path.isfile(os.path.join(CORPUS, name, "case.yml")))


def _read_case(name):
    with open(os.path.join(CORPUS, name, "case.yml")) as handle:
        case = yaml.safe_load(handle)
    unknown = set(case) - CASE_KEYS
    assert not unknown, "%s: unknown case keys %s" % (name, sorted(unknown))
    assert case.get("description"), "%s: needs a description" % name
    assert case.get("expect"), "%s: needs at least one expected string" % name
    return case


CASES = _cases()
SPEC_CASES = [name for name in CASES if not _read_case(name).get("render_dir")]


# --- applying an edit ---------------------------------------------------------

_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _tokens(path):
    tokens, end = [], 0
    for match in _TOKEN.finditer(path):
        if match.start() not in (end, end + 1):
            raise ValueError("cannot parse path %r" % path)
        tokens.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        end = match.end()
    if end != len(path) or not tokens:
        raise ValueError("cannot parse path %r" % path)
    return tokens


def _parent(data, path, create):
    tokens = _tokens(path)
    node = data
    for token, following in zip(tokens, tokens[1:]):
        if isinstance(token, int):
            node = node[token]
            continue
        if token not in node:
            if not create:
                raise KeyError("%s: no %r" % (path, token))
            node[token] = [] if isinstance(following, int) else {}
        node = node[token]
    return node, tokens[-1]


def _set(data, path, value):
    node, last = _parent(data, path, create=True)
    if isinstance(last, int) and last == len(node):
        node.append(copy.deepcopy(value))
    else:
        node[last] = copy.deepcopy(value)


def _unset(data, path):
    node, last = _parent(data, path, create=False)
    del node[last]


def _rename(data, path, new_key):
    node, last = _parent(data, path, create=False)
    node[new_key] = node.pop(last)


def _find_group(body, name):
    """(parent children mapping, group body) of group ``name`` in a hosts.yml tree."""
    for child, child_body in ((body or {}).get("children") or {}).items():
        if child == name:
            return body["children"], child_body
        found = _find_group(child_body, name)
        if found:
            return found
    return None


def _host_vars(body, found):
    body = body or {}
    for host, hvars in (body.get("hosts") or {}).items():
        found.setdefault(host, {}).update(hvars or {})
    for child_body in (body.get("children") or {}).values():
        _host_vars(child_body, found)
    return found


def _edit_hosts(hosts, groups, hostvars):
    known = _host_vars(hosts["all"], {})
    for name, members in (groups or {}).items():
        found = _find_group(hosts["all"], name)
        if members is None:
            if found:
                del found[0][name]
            continue
        if found is None:
            hosts["all"].setdefault("children", {})[name] = {}
            found = (hosts["all"]["children"], hosts["all"]["children"][name])
        parent, _ = found
        parent[name] = dict(parent[name] or {})
        parent[name]["hosts"] = dict((h, dict(known.get(h, {}))) for h in members)
    for host, hvars in (hostvars or {}).items():
        _merge_host(hosts["all"], host, hvars)


def _merge_host(body, host, hvars):
    body = body or {}
    hosts = body.get("hosts") or {}
    if host in hosts:
        hosts[host] = dict(hosts[host] or {}, **hvars)
    for child_body in (body.get("children") or {}).values():
        _merge_host(child_body, host, hvars)


def _read_yaml(path):
    with open(path) as handle:
        return yaml.safe_load(handle)


def _write_yaml(path, data):
    with open(path, "w") as handle:
        handle.write("---\n")
        yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=False)


def materialize(case, dest):
    """Write the production inventory with ``case``'s edit applied as a real inventory at ``dest``."""
    hosts = _read_yaml(os.path.join(BASE, "hosts.yml"))
    _edit_hosts(hosts, case.get("groups"), case.get("hostvars"))

    origin, variables = {}, {}
    folder = os.path.join(BASE, "group_vars", "all")
    for name in sorted(os.listdir(folder)):
        if name.endswith((".yml", ".yaml")):
            for key, value in (_read_yaml(os.path.join(folder, name)) or {}).items():
                origin[key] = name
                variables[key] = value
    for path in case.get("unset") or []:
        _unset(variables, path)
    for path, new_key in (case.get("rename") or {}).items():
        _rename(variables, path, new_key)
    for path, value in (case.get("set") or {}).items():
        _set(variables, path, value)

    files = {}
    for key, value in variables.items():
        files.setdefault(origin.get(key, "zz_case.yml"), {})[key] = value
    os.makedirs(os.path.join(dest, "group_vars", "all"))
    _write_yaml(os.path.join(dest, "hosts.yml"), hosts)
    for name, content in files.items():
        _write_yaml(os.path.join(dest, "group_vars", "all", name), content)
    return dest


def _check_output(case, text, e2e=False):
    missing = [want for want in case["expect"] + (case.get("expect_e2e") or [] if e2e else [])
               if want not in text]
    assert not missing, "expected %r in:\n%s" % (missing, text)
    leaked = [bad for bad in case.get("forbid") or [] if bad in text]
    assert not leaked, "must not appear, but did: %r in:\n%s" % (leaked, text)


# --- layer 1: the spec ------------------------------------------------------------

def test_base_inventory_is_valid(tmp_path):
    """The corpus only proves something if the unedited base inventory passes."""
    variables, groups, hostvars = load_inventory(materialize({}, str(tmp_path / "inv")))
    spec = build_spec(variables, groups, hostvars)
    assert spec["environment"] == "production" and len(spec["apps"]) == 2


def test_corpus_is_large_enough():
    assert len(CASES) >= 120
    assert len(CASES) - len(SPEC_CASES) >= 5


@pytest.mark.parametrize("name", SPEC_CASES)
def test_case_is_rejected(name, tmp_path):
    case = _read_case(name)
    variables, groups, hostvars = load_inventory(materialize(case, str(tmp_path / "inv")))
    with pytest.raises(SpecError) as caught:
        build_spec(variables, groups, hostvars)
    _check_output(case, str(caught.value))


# --- layer 2: the real render playbook --------------------------------------------

def _render(inventory, out, tmp_path, *extra):
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": bindir + os.pathsep + env.get("PATH", ""),
    })
    proc = subprocess.run(
        [os.path.join(bindir, "ansible-playbook"), "-i", inventory,
         os.path.join(REPO, "playbooks", "render.yml"), "-e", "plinth_render_dir=%s" % out] + list(extra),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def _snapshot(root):
    """{relpath: (digest, mtime)} of every file and folder under ``root``; links by their target."""
    found = {}
    for folder, dirs, names in os.walk(root):
        for name in names + dirs:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found[os.path.relpath(path, root)] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                found[os.path.relpath(path, root)] = (digest, os.stat(path).st_mtime_ns)
            else:
                found[os.path.relpath(path, root)] = ("folder", os.stat(path).st_mtime_ns)
    return found


def _prepare(render_dir, steps, outside):
    for step in steps:
        path = os.path.join(render_dir, step.get("link") or step["file"])
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        if "link" in step:
            target = step["to"]
            if target == "outside" or target.startswith("outside/"):
                target = os.path.join(os.path.dirname(outside), target)
            os.symlink(target, path)
        else:
            with open(path, "w") as handle:
                handle.write(step["content"])


def _contents(root):
    """Every file under ``root`` as text, links not followed."""
    found = {}
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, root)] = handle.read().decode("utf-8", "replace")
    return found


@pytest.mark.parametrize("name", CASES)
def test_render_playbook_rejects_case(name, tmp_path):
    case = _read_case(name)
    inventory = materialize(case, str(tmp_path / "inv"))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.yaml").write_text("precious: true\n")
    out = tmp_path / "out"
    out.mkdir()
    _prepare(str(out), case.get("render_dir") or [], str(outside))
    before = {"out": _snapshot(str(out)), "outside": _snapshot(str(outside)), "inv": _snapshot(inventory)}

    code, output = _render(inventory, str(out), tmp_path, "--diff", "-vvv")

    assert code != 0, output
    _check_output(case, output, e2e=True)
    after = {"out": _snapshot(str(out)), "outside": _snapshot(str(outside)), "inv": _snapshot(inventory)}
    assert after == before, "the render wrote files: %s" % sorted(
        set(after["out"].items()) ^ set(before["out"].items()))
    leaked = [(path, bad) for path, text in sorted(_contents(str(tmp_path)).items())
              for bad in case.get("forbid") or [] if bad in text and not path.startswith(("inv/", "outside/"))]
    assert not leaked, "secret text written to %s" % [path for path, _bad in leaked]


def test_invalid_render_leaves_previous_tree_untouched(tmp_path):
    out = tmp_path / "out"
    code, output = _render(materialize({}, str(tmp_path / "good")), str(out), tmp_path)
    assert code == 0, output
    before = _snapshot(str(out))
    assert before, "the good render wrote nothing"

    case = _read_case("kong-replicas-exceed-gateway-pool")
    code, output = _render(materialize(case, str(tmp_path / "bad")), str(out), tmp_path)
    assert code != 0, output
    _check_output(case, output)
    assert _snapshot(str(out)) == before

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: the example inventories, read the way Ansible reads them."""

from __future__ import absolute_import, annotations, division, print_function

import copy
import hashlib
import json
import os
import subprocess
import sys

import pytest

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
from ansible.vars.manager import VariableManager

from ansible_collections.plinth.platform.plugins.module_utils.plain import plain

__metaclass__ = type

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", "..", ".."))
INVENTORIES = os.path.join(REPO, "inventories")
COLLECTIONS = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", ".."))

_DIGEST = """
import importlib, sys
from ansible_collections.plinth.platform.tests.unit.conftest import sha256_of
function = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
print(sha256_of(function(*sys.argv[3:])))
"""


def sha256_of(value):
    """Digest of a JSON-able value; dictionaries by sorted key, so only real output order counts."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


def digest_in_fresh_process(module, function, hash_seed, *args):
    """sha256_of(module.function(*args)) from a new interpreter with PYTHONHASHSEED=hash_seed.

    Set and hash order is fixed within one process: output that leaks it only differs
    between processes that hash differently.
    """
    path = [COLLECTIONS] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, PYTHONHASHSEED=str(hash_seed), PYTHONPATH=os.pathsep.join(path))
    result = subprocess.run([sys.executable, "-c", _DIGEST, module, function] + list(args), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def files_under(root):
    """Relative paths of the files below root."""
    found = set()
    for folder, _dirs, names in os.walk(root):
        for name in names:
            found.add(os.path.relpath(os.path.join(folder, name), root))
    return found


def rewrite_golden_files(root, files):
    """Make root hold exactly files ({relative path: text}); fail naming what had to change.

    Update mode passes only when the golden files were already right, so a run that
    rewrote them can never be mistaken for one that checked them.
    """
    changed = sorted(path for path in files_under(root) if path not in files)
    for path in changed:
        os.remove(os.path.join(root, path))
    for path, content in sorted(files.items()):
        target = os.path.join(root, path)
        if os.path.exists(target):
            with open(target) as handle:
                if handle.read() == content:
                    continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as handle:
            handle.write(content)
        changed.append(path)
    if changed:
        pytest.fail("golden files rewritten (%d changed: %s); review the diff and run again without "
                    "PLINTH_UPDATE_GOLDEN" % (len(changed), ", ".join(sorted(changed))))


def _templated(templar, value):
    """``value`` templated as a play would see it; a value that does not template stays as written.

    The validate action reports a failed template itself; what the spec makes of the raw text
    is what these tests look at.
    """
    try:
        return templar.template(value)
    except AnsibleError:
        return value


def load_inventory(path):
    """(variables, groups, hostvars) of an inventory, as a play on the controller sees them.

    Ansible's own inventory and variable managers read it: every source, group_vars and
    host_vars, precedence, templating. ``variables`` holds the ``plinth_*`` variables of
    localhost, where the validate action runs; ``groups`` is the ``groups`` magic variable;
    ``hostvars`` maps every host to its variables without those ``plinth_*`` ones and
    without Ansible's magic variables. Everything is plain data, safe to edit and to dump.
    """
    if not os.path.isabs(path):
        path = os.path.join(INVENTORIES, path)
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[path])
    manager = VariableManager(loader=loader, inventory=inventory)

    def variables_of(host, keep):
        found = manager.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=found)
        return dict((name, _templated(templar, value)) for name, value in found.items() if keep(name))

    variables = variables_of(inventory.get_host("localhost"), lambda name: name.startswith("plinth_"))
    hostvars = dict((host.name, variables_of(host, lambda name: not name.startswith("plinth_")
                                             and name not in C.INTERNAL_STATIC_VARS))
                    for host in inventory.get_hosts())
    return plain((variables, inventory.get_groups_dict(), hostvars))


@pytest.fixture(params=["production", "staging"])
def example_env(request):
    return request.param


@pytest.fixture
def production():
    """A fresh copy of the production inventory, safe to edit in a test."""
    return copy.deepcopy(load_inventory("production"))

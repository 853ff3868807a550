# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures: the example inventories, read the way Ansible reads them."""

from __future__ import absolute_import, annotations, division, print_function

import copy
import os

import pytest
import yaml

__metaclass__ = type

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", "..", ".."))
INVENTORIES = os.path.join(REPO, "inventories")


def _walk_group(name, body, groups, hostvars):
    body = body or {}
    members = set()
    for host, hvars in (body.get("hosts") or {}).items():
        members.add(host)
        hostvars.setdefault(host, {}).update(hvars or {})
    for child, child_body in (body.get("children") or {}).items():
        members |= _walk_group(child, child_body, groups, hostvars)
    groups[name] = sorted(set(groups.get(name, [])) | members)
    return members


def load_inventory(path):
    """(variables, groups, hostvars) of an inventory directory: hosts.yml + group_vars/all/."""
    if not os.path.isabs(path):
        path = os.path.join(INVENTORIES, path)
    with open(os.path.join(path, "hosts.yml")) as handle:
        hosts = yaml.safe_load(handle)
    groups, hostvars = {}, {}
    for name, body in hosts.items():
        _walk_group(name, body, groups, hostvars)
    variables = {}
    folder = os.path.join(path, "group_vars", "all")
    for name in sorted(os.listdir(folder)):
        if name.endswith((".yml", ".yaml")):
            with open(os.path.join(folder, name)) as handle:
                variables.update(yaml.safe_load(handle) or {})
    return variables, groups, hostvars


@pytest.fixture(params=["production", "staging"])
def example_env(request):
    return request.param


@pytest.fixture
def production():
    """A fresh copy of the production inventory, safe to edit in a test."""
    return copy.deepcopy(load_inventory("production"))

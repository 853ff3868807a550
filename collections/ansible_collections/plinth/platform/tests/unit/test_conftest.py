# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The tests' inventory reader sees what a play sees: Ansible reads the inventory for it."""

from __future__ import absolute_import, annotations, division, print_function

import yaml

from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

__metaclass__ = type


def write(root, path, text):
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def test_group_and_host_variables_precedence_and_templates(tmp_path):
    write(tmp_path, "hosts.yml", "all:\n  children:\n    workers:\n      hosts:\n"
                                 "        w-1: {ansible_host: '{{ subnet }}.5'}\n        w-2:\n")
    write(tmp_path, "group_vars/all/platform.yml", "plinth_environment: '{{ env_name }}'\nenv_name: staging\n"
                                                   "subnet: 192.0.2\nplinth_broken: '{{ not_defined }}'\n")
    write(tmp_path, "group_vars/workers.yml", "subnet: 198.51.100\npool: workers\n")
    write(tmp_path, "host_vars/w-2.yml", "ansible_host: 203.0.113.9\n")

    variables, groups, hostvars = load_inventory(str(tmp_path))

    # localhost is in no group but all: the subnet of group workers is not its.
    assert variables == {"plinth_environment": "staging", "plinth_broken": "{{ not_defined }}"}
    assert groups == {"all": ["w-1", "w-2"], "ungrouped": [], "workers": ["w-1", "w-2"]}
    assert hostvars == {
        "w-1": {"ansible_host": "198.51.100.5", "env_name": "staging", "subnet": "198.51.100", "pool": "workers"},
        "w-2": {"ansible_host": "203.0.113.9", "env_name": "staging", "subnet": "198.51.100", "pool": "workers"},
    }


def test_what_it_returns_is_plain_data():
    # PyYAML's safe dumper refuses Ansible's tagged strings and dicts.
    yaml.safe_dump(list(load_inventory("production")))

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""A key given twice in inventory YAML stops the render: Ansible's default keeps the last one silently.

The bad-input corpus cannot express this (its cases are edits of parsed data), so this
test writes the duplicate line itself and runs the real render playbook.
"""

from __future__ import absolute_import, annotations, division, print_function

import os

from test_invalid_inventories import _render, materialize

__metaclass__ = type


def test_duplicate_yaml_key_is_an_error(tmp_path):
    inventory = materialize({}, str(tmp_path / "inv"))
    cluster = os.path.join(inventory, "group_vars", "all", "cluster.yml")
    with open(cluster, "a") as handle:
        handle.write("plinth_pod_cidr: 10.100.0.0/16\n")
    out = tmp_path / "out"

    code, output = _render(inventory, str(out), tmp_path)

    assert code != 0, output
    assert "plinth_pod_cidr" in output, output
    assert "duplicate" in output.lower(), output
    assert not out.exists() or not any(out.iterdir()), "the render wrote files: %s" % sorted(os.listdir(str(out)))

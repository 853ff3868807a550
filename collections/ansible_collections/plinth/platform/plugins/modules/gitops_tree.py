#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gitops_tree
short_description: Write the generated GitOps tree, changing only what differs
version_added: 0.1.0
description:
  - Renders the GitOps tree from the platform spec (or takes ready file contents) and writes it
    under O(dest), replacing each file atomically and only when its content differs.
  - Removes files that an earlier run generated and that are no longer wanted, and prunes
    folders left empty by that. Files it did not generate are never touched.
  - The list of generated files is kept in C(.plinth-generated-<scope>) at the root of O(dest),
    so several environments can share one tree without pruning each other's files.
author:
  - Plinth contributors (@plinth)
options:
  dest:
    description: Root folder of the tree on the controller, created when missing.
    type: path
    required: true
  spec:
    description:
      - The platform spec, as set by M(plinth.platform.validate); the tree is rendered from it.
      - Exactly one of O(spec) and O(files) is required.
    type: dict
  files:
    description:
      - Relative path to file content, for example from the P(plinth.platform.gitops_files#filter) filter.
      - Paths must stay inside O(dest).
    type: dict
  scope:
    description:
      - Name of this set of files. Defaults to the spec's environment, or C(default) with O(files).
    type: str
attributes:
  action:
    description: Implemented as an action plugin that renders and writes on the controller.
    support: full
  check_mode:
    description: Reports what would be created, updated and removed without writing anything.
    support: full
  diff_mode:
    description: Returns the before and after content of every file that changes.
    support: full
  platform:
    description: Writes on the controller, whatever the targets run.
    support: full
    platforms: all
notes:
  - This module is implemented as an action plugin and writes on the controller, where the
    GitOps checkout lives.
"""

EXAMPLES = r"""
- name: Validate the inventory
  plinth.platform.validate:

- name: Write the GitOps tree
  plinth.platform.gitops_tree:
    dest: "{{ playbook_dir }}/../build/gitops"
    spec: "{{ plinth_spec }}"
"""

RETURN = r"""
dest:
  description: Absolute path of the tree.
  returned: always
  type: str
created:
  description: Files written that did not exist.
  returned: always
  type: list
  elements: str
updated:
  description: Files whose content changed.
  returned: always
  type: list
  elements: str
removed:
  description: Files generated earlier and removed now.
  returned: always
  type: list
  elements: str
unchanged:
  description: How many files already had the wanted content.
  returned: always
  type: int
summary:
  description: What the tree deploys (environment, components, releases, apps, node pools).
  returned: when O(spec) is given
  type: dict
"""

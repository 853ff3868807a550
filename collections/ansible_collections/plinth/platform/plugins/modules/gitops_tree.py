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
  - Writes a set of generated files under O(dest), replacing each file atomically and only
    when its content differs.
  - Removes files that an earlier run generated and that are no longer wanted, and prunes
    folders left empty by that. Files it did not generate are never touched.
  - The list of generated files is kept in C(.plinth-generated-<scope>) at the root of O(dest),
    so several environments can share one tree without pruning each other's files.
author:
  - Plinth contributors (@plinth)
options:
  dest:
    description: Root folder of the tree, created when missing.
    type: path
    required: true
  files:
    description:
      - Relative path to file content, as returned by the P(plinth.platform.gitops_files#filter) filter.
      - Paths must stay inside O(dest).
    type: dict
    required: true
  scope:
    description: Name of this set of files, usually the environment.
    type: str
    default: default
attributes:
  check_mode:
    description: Reports what would be created, updated and removed without writing anything.
    support: full
  diff_mode:
    description: Returns the before and after content of every file that changes.
    support: full
"""

EXAMPLES = r"""
- name: Write the GitOps tree
  plinth.platform.gitops_tree:
    dest: "{{ playbook_dir }}/../build/gitops"
    files: "{{ spec | plinth.platform.gitops_files }}"
    scope: production
"""

RETURN = r"""
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
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.plinth.platform.plugins.module_utils import tree


def argument_spec():
    return dict(
        dest=dict(type="path", required=True),
        files=dict(type="dict", required=True),
        scope=dict(type="str", default="default"),
    )


def diff_of(changes, files):
    diffs = []
    for relpath in changes["create"]:
        diffs.append({"before": "", "after": files[relpath],
                      "before_header": "/dev/null", "after_header": relpath})
    for relpath in changes["update"]:
        diffs.append({"before": changes["before"][relpath], "after": files[relpath],
                      "before_header": relpath, "after_header": relpath})
    for relpath in changes["remove"]:
        diffs.append({"before": changes["before"][relpath] or "", "after": "",
                      "before_header": relpath, "after_header": "/dev/null"})
    return diffs


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    dest = module.params["dest"]
    files = dict((str(k), str(v)) for k, v in module.params["files"].items())

    def fail(msg):
        module.fail_json(msg=msg, dest=dest)

    try:
        changes = tree.plan(dest, files, module.params["scope"])
    except tree.TreeError as exc:
        fail(str(exc))
    changed = bool(changes["create"] or changes["update"] or changes["remove"] or changes["manifest"])
    result = dict(
        changed=changed,
        dest=dest,
        created=changes["create"],
        updated=changes["update"],
        removed=changes["remove"],
        unchanged=len(files) - len(changes["create"]) - len(changes["update"]),
    )
    if module._diff and changed:
        result["diff"] = diff_of(changes, files)
    if module.check_mode:
        module.exit_json(**result)
    try:
        tree.apply(dest, files, changes, module.params["scope"])
    except (OSError, tree.TreeError) as exc:
        fail("could not write the tree under %s: %s" % (dest, exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gitops_commit
short_description: Commit the rendered GitOps tree to its local clone and push it
version_added: 0.1.0
description:
  - Commits, in the local clone of the GitOps repository, the files that the render of one
    environment owns (those its list of generated files C(.plinth-generated-<scope>) names now
    or named at the last commit, and the list itself), and only when one of them changed.
    Other files in the clone, tracked or not, staged or not, are left out of the commit.
  - Before committing, checks every file about to be committed for secret material (a
    Kubernetes Secret, a literal value under a key such as C(password) or C(token), a private
    key, a URL with a password, well-known token formats) and fails without committing when
    it finds any. The values are never shown.
  - With O(push=true), pushes the branch when the remote lacks the clone's last commit, and
    fails when the remote branch has commits the clone lacks.
author:
  - Plinth contributors (@plinth)
options:
  path:
    description: Root of the local clone (its work tree).
    type: path
    required: true
  scope:
    description: The environment whose render is committed, as given to M(plinth.platform.gitops_tree).
    type: str
    required: true
  subdir:
    description: Folder of the clone the tree was rendered into, relative to its root.
    type: str
    default: ""
  subject:
    description:
      - Subject line of the commit message. The counts of created, updated and removed files are
        appended, and the body lists each file.
    type: str
    default: Render the GitOps tree
  author_name:
    description: Author and committer name of the commit.
    type: str
    default: Plinth
  author_email:
    description: Author and committer e-mail address of the commit.
    type: str
    default: plinth@localhost
  push:
    description: Push the branch to O(remote) when the remote lacks the clone's last commit.
    type: bool
    default: false
  remote:
    description: Remote to push to.
    type: str
    default: origin
  branch:
    description: Branch of the remote that receives the commits.
    type: str
    default: main
attributes:
  check_mode:
    description: Reports whether it would commit and push, and the files, without changing the clone or the remote.
    support: full
  diff_mode:
    description: Lists the files that would be committed, with their state.
    support: full
  platform:
    description: Runs git on the host that holds the clone, normally the controller.
    support: full
    platforms: posix
requirements:
  - git >= 2.26 on the host that holds the clone.
notes:
  - In check mode, files that M(plinth.platform.gitops_tree) would write are not on disk yet,
    so only changes already in the clone are reported here.
"""

EXAMPLES = r"""
- name: Write the GitOps tree into the clone
  plinth.platform.gitops_tree:
    dest: "{{ playbook_dir }}/../build/gitops"
    spec: "{{ plinth_spec }}"

- name: Commit the render and push it
  plinth.platform.gitops_commit:
    path: "{{ playbook_dir }}/../build/gitops"
    scope: "{{ plinth_spec.environment }}"
    branch: "{{ plinth_spec.gitops.revision }}"
    subject: Render environment {{ plinth_spec.environment }}
    push: true
"""

RETURN = r"""
files:
  description: Repository path to C(created), C(updated) or C(removed), for the files committed (or to be).
  returned: always
  type: dict
  sample: {"clusters/production/root.yaml": "updated"}
committed:
  description: Whether a commit was made (or would be, in check mode).
  returned: always
  type: bool
commit:
  description: Id of the clone's last commit after the run (null in an empty clone).
  returned: always
  type: str
pushed:
  description: Whether the branch was pushed (or would be, in check mode).
  returned: always
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.plinth.platform.plugins.module_utils import gitops_repo

WORDS = gitops_repo.STATUS_WORDS


def argument_spec():
    return dict(
        path=dict(type="path", required=True),
        scope=dict(type="str", required=True),
        subdir=dict(type="str", default=""),
        subject=dict(type="str", default="Render the GitOps tree"),
        author_name=dict(type="str", default="Plinth"),
        author_email=dict(type="str", default="plinth@localhost"),
        push=dict(type="bool", default=False),
        remote=dict(type="str", default="origin"),
        branch=dict(type="str", default="main"),
    )


def git_runner(module, clone):
    git = module.get_bin_path("git", required=True)

    def run(args, stdin=None):
        return module.run_command([git, "-C", clone] + args, data=stdin, binary_data=True)
    return run


def fail(module, msg, **result):
    module.fail_json(msg=msg, **result)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    clone = os.path.abspath(params["path"])
    subdir = params["subdir"].strip("/")
    if not os.path.isdir(os.path.join(clone, ".git")):
        fail(module, "path: got %r; must be the root of a git clone (no .git folder there)" % clone)
    run = git_runner(module, clone)
    result = dict(changed=False, files={}, committed=False, pushed=False)

    try:
        owned = gitops_repo.owned_paths(run, clone, subdir, params["scope"])
        changes = gitops_repo.pending_changes(run, owned)
        result["files"] = dict((path, WORDS.get(letter, "updated")) for path, letter in changes.items())
        findings = gitops_repo.secret_findings(clone, changes)
        if findings:
            fail(module, "refusing to commit: %d finding(s) that look like secret material; the GitOps "
                         "tree must hold none (secrets come from Vault through ExternalSecrets): %s"
                         % (len(findings), "; ".join(findings)), **result)
        # Asked before committing, so a remote that moved on stops the run with nothing committed.
        remote_behind = params["push"] and gitops_repo.needs_push(run, params["remote"], params["branch"])
        if changes:
            result.update(committed=True, changed=True)
            if not module.check_mode:
                message = gitops_repo.commit_message(params["subject"], changes)
                gitops_repo.commit(run, changes, message, params["author_name"], params["author_email"])
        if params["push"] and (remote_behind or result["committed"]):
            result.update(pushed=True, changed=True)
            if not module.check_mode:
                gitops_repo.push(run, params["remote"], params["branch"])
        result["commit"] = gitops_repo.head(run)
    except gitops_repo.RepoError as exc:
        fail(module, str(exc), **result)

    if module._diff and result["files"]:
        listing = "".join("%s %s\n" % (word, path) for path, word in sorted(result["files"].items()))
        result["diff"] = {"before": "", "after": listing, "after_header": "files committed to %s" % clone}
    module.exit_json(**result)


if __name__ == "__main__":
    main()

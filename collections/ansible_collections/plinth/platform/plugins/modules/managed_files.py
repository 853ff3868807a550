#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: managed_files
short_description: Bring several small configuration files, their folders and leftovers to a wanted state in one run
version_added: 0.1.0
description:
  - Writes the files a role owns (content given whole, as rendered on the controller), creates
    the folders they live in, removes files the role no longer wants, and sets owner, group and
    mode, all in one module run on the host.
  - One run instead of one or two per file (M(ansible.builtin.copy) and M(ansible.builtin.template)
    each stat the file first) is what keeps a no-op re-run of a role cheap on many hosts.
  - A file is only rewritten when its content differs, by an atomic rename in its own folder.
    Missing parent folders are created as C(root:root), mode C(0755).
  - Reports C(changed) only when something on the host changed, and which paths did, so a task
    can notify a handler and a later task can ask whether one particular file changed.
author:
  - Plinth contributors (@plinth)
options:
  files:
    description: The files and folders, handled in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      state:
        description:
          - V(file) writes O(files[].content); V(directory) makes a folder; V(absent) removes a
            file (never a folder).
        type: str
        choices: [file, directory, absent]
        default: file
      content:
        description: The whole content of the file. Required when O(files[].state=file).
        type: str
      mode:
        description: Octal mode. Defaults to C(0644) for files and C(0755) for folders.
        type: str
      owner:
        description: Owner.
        type: str
        default: root
      group:
        description: Group.
        type: str
        default: root
  prune:
    description:
      - Files to remove when O(files) does not list them. Only files whose content holds O(prune[].marker)
        are removed, so that files written by anyone else stay.
    type: list
    elements: dict
    default: []
    suboptions:
      glob:
        description: Shell pattern of the candidate files (an absolute path).
        type: str
        required: true
      marker:
        description: Text a file must contain to be removed.
        type: str
        required: true
notes:
  - Supports check mode and diff mode. The diff shows the content of every file that changes,
    so do not pass secrets; use M(ansible.builtin.copy) with C(no_log) for those.
"""

EXAMPLES = r"""
- name: Write the containerd configuration files
  plinth.platform.managed_files:
    files:
      - path: /etc/containerd/certs.d
        state: directory
      - path: /etc/containerd/certs.d/docker.io/hosts.toml
        content: "{{ lookup('ansible.builtin.template', 'hosts.toml.j2') }}"
      - path: /etc/crictl.yaml
        content: "runtime-endpoint: unix:///run/containerd/containerd.sock\n"
    prune:
      - glob: /etc/containerd/certs.d/*/hosts.toml
        marker: Managed by Plinth
  register: containerd_files
"""

RETURN = r"""
changed_paths:
  description: Every path that was (or, in check mode, would be) created, rewritten, re-moded or removed, in order.
  returned: always
  type: list
  elements: str
  sample: [/etc/containerd/certs.d/docker.io, /etc/containerd/certs.d/docker.io/hosts.toml]
"""

import glob
import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

DEFAULT_MODES = {"file": "0644", "directory": "0755"}


def argument_spec():
    return dict(
        files=dict(type="list", elements="dict", required=True, options=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["file", "directory", "absent"], default="file"),
            content=dict(type="str"),
            mode=dict(type="str"),
            owner=dict(type="str", default="root"),
            group=dict(type="str", default="root"),
        ), required_if=[("state", "file", ["content"])]),
        prune=dict(type="list", elements="dict", default=[], options=dict(
            glob=dict(type="str", required=True),
            marker=dict(type="str", required=True),
        )),
    )


class Files(object):
    """Applies the wanted state path by path, recording what changed."""

    def __init__(self, module):
        self.module = module
        self.changed_paths = []
        self.diffs = []

    def record(self, path, before, after):
        if path not in self.changed_paths:
            self.changed_paths.append(path)
        if self.module._diff:
            self.diffs.append(dict(before_header=path, after_header=path, before=before, after=after))

    def attributes(self, path, entry, kind):
        """owner, group and mode: changed when any of them differs (nothing to do on a path that check mode did not make)."""
        if not os.path.lexists(path):
            return
        args = self.module.load_file_common_arguments(dict(
            path=path, owner=entry["owner"], group=entry["group"], mode=entry["mode"] or DEFAULT_MODES[kind]))
        diff = dict(before={}, after={})
        if self.module.set_fs_attributes_if_different(args, False, diff):
            self.record(path, "%r\n" % diff["before"], "%r\n" % diff["after"])

    def directory(self, path, entry):
        if os.path.lexists(path) and not os.path.isdir(path):
            self.module.fail_json(msg="%s: wanted a folder, found a file or link there" % path, changed_paths=self.changed_paths)
        if not os.path.isdir(path):
            self.parents(path)
            if not self.module.check_mode:
                os.mkdir(path)
            self.record(path, "absent\n", "directory\n")
        self.attributes(path, entry, "directory")

    def parents(self, path):
        missing = []
        parent = os.path.dirname(path)
        while parent and not os.path.isdir(parent):
            missing.insert(0, parent)
            parent = os.path.dirname(parent)
        for folder in missing:
            if not self.module.check_mode:
                os.mkdir(folder)
            self.record(folder, "absent\n", "directory\n")
            self.attributes(folder, dict(owner="root", group="root", mode=None), "directory")

    def file(self, path, entry):
        wanted = to_bytes(entry["content"], errors="surrogate_or_strict")
        if os.path.isdir(path) or (os.path.lexists(path) and not os.path.isfile(path)):
            self.module.fail_json(msg="%s: wanted a file, found a folder or special file there" % path,
                                  changed_paths=self.changed_paths)
        current = None
        if os.path.exists(path):
            with open(path, "rb") as handle:
                current = handle.read()
        if current != wanted:
            self.parents(path)
            if not self.module.check_mode:
                self.write(path, wanted)
            before = "" if current is None else to_native(current, errors="surrogate_or_replace")
            self.record(path, before, entry["content"])
        self.attributes(path, entry, "file")

    def write(self, path, content):
        """Stage ``content`` beside ``path`` (same file system, private until moved) and move it in place.

        ``atomic_move`` gives the new file the replaced one's owner, mode and SELinux context, or
        the umask's mode and the default context when there was none; ``attributes`` then sets
        the wanted owner, group and mode, as ansible.builtin.copy does after its own move.
        """
        handle, staged = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".%s." % os.path.basename(path))
        self.module.add_cleanup_file(staged)  # removed on exit_json and fail_json alike, if it is still there
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(content)
            self.module.atomic_move(staged, path)
        except Exception as exc:  # atomic_move raises a bare Exception for whatever stops it
            self.module.fail_json(msg="%s: could not be written: %s" % (path, exc), changed_paths=self.changed_paths)

    def absent(self, path):
        if os.path.isdir(path) and not os.path.islink(path):
            self.module.fail_json(msg="%s: state absent removes files, and this is a folder" % path,
                                  changed_paths=self.changed_paths)
        if os.path.lexists(path):
            if not self.module.check_mode:
                os.unlink(path)
            self.record(path, "file\n", "absent\n")

    def prune(self, pattern, marker, wanted):
        marker = to_bytes(marker, errors="surrogate_or_strict")
        for path in sorted(glob.glob(pattern)):
            if path in wanted or not os.path.isfile(path):
                continue
            with open(path, "rb") as handle:
                if marker not in handle.read():
                    continue
            self.absent(path)


def validate(module):
    """Every rule checked before the host is touched."""
    seen = set()
    for entry in module.params["files"]:
        path = entry["path"]
        if not os.path.isabs(path):
            module.fail_json(msg="files: path %r is relative; every path must be absolute" % path)
        if os.path.normpath(path) in seen:
            module.fail_json(msg="files: %s is listed twice; list every path once" % path)
        seen.add(os.path.normpath(path))
        if entry["mode"] is not None and not re.match(r"^0?[0-7]{3,4}$", entry["mode"]):
            module.fail_json(msg="files: mode %r of %s is not an octal mode such as '0644'" % (entry["mode"], path))
    for rule in module.params["prune"]:
        if not os.path.isabs(rule["glob"]):
            module.fail_json(msg="prune: glob %r is relative; it must be an absolute pattern" % rule["glob"])
    return seen


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    listed = validate(module)
    files = Files(module)
    entries = module.params["files"]
    for entry in entries:
        path = os.path.normpath(entry["path"])
        if entry["state"] == "directory":
            files.directory(path, entry)
        elif entry["state"] == "absent":
            files.absent(path)
        else:
            files.file(path, entry)
    for rule in module.params["prune"]:
        files.prune(rule["glob"], rule["marker"], listed)

    result = dict(changed=bool(files.changed_paths), changed_paths=files.changed_paths)
    if module._diff:
        result["diff"] = files.diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()

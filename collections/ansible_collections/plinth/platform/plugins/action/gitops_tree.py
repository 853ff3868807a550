# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Write the GitOps tree on the controller, in-process.

The tree is a local checkout, and for a thousand apps it is thousands of files:
rendering and writing here avoids shipping megabytes of arguments to a module
process and back.
"""

from __future__ import absolute_import, annotations, division, print_function

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.plinth.platform.plugins.module_utils import gitops, tree
from ansible_collections.plinth.platform.plugins.module_utils.plain import plain

__metaclass__ = type


def argument_spec():
    return dict(
        dest=dict(type="path", required=True),
        files=dict(type="dict"),
        spec=dict(type="dict"),
        scope=dict(type="str"),
    )


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(
            argument_spec=argument_spec(),
            mutually_exclusive=[("files", "spec")],
            required_one_of=[("files", "spec")],
        )
        dest = os.path.abspath(os.path.expanduser(args["dest"]))
        scope = args["scope"]
        if args["spec"] is not None:
            spec = plain(args["spec"])
            files = gitops.render(spec)
            scope = scope or spec["environment"]
            result["summary"] = gitops.summary(spec)
        else:
            files = dict((str(k), str(v)) for k, v in args["files"].items())
        scope = scope or "default"

        try:
            changes = tree.sync(dest, files, scope, check=self._task.check_mode)
        except tree.TreeError as exc:
            raise AnsibleActionFail(str(exc))
        except OSError as exc:
            raise AnsibleActionFail("could not write the tree under %s: %s" % (dest, exc))
        changed = tree.changed(changes)
        result.update(
            changed=changed,
            dest=dest,
            created=changes["create"],
            updated=changes["update"],
            removed=changes["remove"],
            unchanged=len(files) - len(changes["create"]) - len(changes["update"]),
        )
        if self._task.diff and changed:
            result["diff"] = tree.diff(changes, files)
        return result

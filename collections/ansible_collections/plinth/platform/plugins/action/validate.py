# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Validate the inventory on the controller and publish the spec as a fact."""

from __future__ import absolute_import, annotations, division, print_function

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec, host_addresses

__metaclass__ = type


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("fact",))

    def _template(self, value):
        return self._templar.template(value)

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        fact = self._task.args.get("fact", "plinth_spec")
        if not isinstance(fact, str) or not fact.isidentifier():
            raise AnsibleActionFail("fact: got %r; must be a variable name" % (fact,))

        variables = dict((name, self._template(task_vars[name]))
                         for name in task_vars if name.startswith("plinth_") and name != fact)
        groups = self._template(task_vars.get("groups", {}))
        hostvars = host_addresses(
            groups, lambda host: self._template(task_vars["hostvars"][host].get("ansible_host")))

        try:
            spec = build_spec(variables, groups, hostvars)
        except SpecError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        result.update(changed=False, ansible_facts={fact: spec})
        return result

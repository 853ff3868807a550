# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Validate the inventory on the controller and publish the spec as a fact."""

from __future__ import absolute_import, annotations, division, print_function

from collections.abc import Mapping

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.plinth.platform.plugins.module_utils import secrets
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec, host_addresses

__metaclass__ = type


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("fact",))

    def _template(self, value):
        return self._templar.template(value)

    def _templated(self, value, path, failures):
        """``value`` templated leaf by leaf, so a failure names its own path and nothing else.

        Ansible's own report of a templating failure quotes the inventory lines around it,
        secrets included; here it says where and why, never what the lines hold.
        """
        if isinstance(value, Mapping):
            return dict((key, self._templated(sub, "%s.%s" % (path, key), failures)) for key, sub in value.items())
        if isinstance(value, (list, tuple)):
            return [self._templated(sub, "%s[%d]" % (path, index), failures) for index, sub in enumerate(value)]
        try:
            return self._template(value)
        except AnsibleError as exc:
            reason = str(getattr(exc, "message", "") or type(exc).__name__).splitlines()[0]
            if secrets.text_rules(reason) or secrets.is_secret_key(path.rpartition(".")[2]):
                reason = type(exc).__name__
            failures.append("%s: could not be templated (%s); fix the template or the variable it reads"
                            % (path, reason))
            return None

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        fact = self._task.args.get("fact", "plinth_spec")
        if not isinstance(fact, str) or not fact.isidentifier():
            raise AnsibleActionFail("fact: got %r; must be a variable name" % (fact,))

        failures = []
        variables = dict((name, self._templated(task_vars[name], name, failures))
                         for name in task_vars if name.startswith("plinth_") and name != fact)
        groups = self._template(task_vars.get("groups", {}))
        hostvars = host_addresses(groups, lambda host: self._templated(
            task_vars["hostvars"][host].get("ansible_host"), "hostvars.%s.ansible_host" % host, failures))

        try:
            # The paths the roles default to sit beside the playbooks, as they always have.
            spec = build_spec(variables, groups, hostvars, playbook_dir=task_vars.get("playbook_dir"))
        except SpecError as exc:
            failures.extend(exc.errors)
        if failures:
            result.update(failed=True, msg=str(SpecError(failures)))
            return result
        result.update(changed=False, ansible_facts={fact: spec})
        return result

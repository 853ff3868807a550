# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Chains out of an iptables-save dump; the logic lives in module_utils/iptables.py."""

from __future__ import absolute_import, annotations, division, print_function

from ansible.errors import AnsibleFilterError

from ansible_collections.plinth.platform.plugins.module_utils import iptables

__metaclass__ = type

DOCUMENTATION = r"""
name: iptables_without_chains
short_description: The iptables-restore input that removes chains by name prefix and keeps every other rule
version_added: 0.1.0
author: Plinth contributors
description:
  - Reads what C(iptables-save) or C(ip6tables-save) printed and returns the input for C(iptables-restore)
    (or C(ip6tables-restore)) that removes the user-defined chains whose names start with one of O(prefixes),
    the rules in them and every rule that jumps (C(-j)) or goes (C(-g)) to them.
  - Every other rule stays. Only the tables that change are in the result; C(iptables-restore) replaces
    each table it is given, so such a table is given whole, and leaves the other tables alone.
  - Built-in chains (C(INPUT), C(FORWARD), C(POSTROUTING), ...) are never removed.
  - An error names the line of the dump that cannot be read.
positional: prefixes
options:
  _input:
    description: The output of C(iptables-save) (without C(--counters) or with it).
    type: str
    required: true
  prefixes:
    description: Prefixes of the names of the chains to remove, for example V(KUBE-) and V(CNI-).
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Read the rules
  ansible.builtin.command:
    argv: [iptables-save]
  register: __rules
  changed_when: false
  check_mode: false

- name: Remove the chains of kube-proxy and of the CNI plugins
  ansible.builtin.command:
    argv: [iptables-restore]
    stdin: "{{ (__rules.stdout | plinth.platform.iptables_without_chains(['KUBE-', 'CNI-'])).restore }}"
  changed_when: true
  when: (__rules.stdout | plinth.platform.iptables_without_chains(['KUBE-', 'CNI-'])).tables | length > 0
"""

RETURN = r"""
_value:
  description: What to restore and what goes.
  type: dict
  contains:
    restore:
      description: The C(iptables-restore) input, one block per table that changes; empty when nothing is removed.
      type: str
    tables:
      description: The tables that change.
      type: list
      elements: str
    chains:
      description: The removed chains, as C(table:chain).
      type: list
      elements: str
    rules:
      description: How many rules are removed.
      type: int
  sample:
    restore: "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    tables: [filter]
    chains: ["filter:KUBE-FIREWALL"]
    rules: 3
"""


def iptables_without_chains(text, prefixes):
    # Plain strings: Ansible hands values over with its own tagged types.
    if isinstance(prefixes, (list, tuple)):
        prefixes = [str(prefix) if isinstance(prefix, str) else prefix for prefix in prefixes]
    try:
        return iptables.without_chains(str(text) if isinstance(text, str) else text, prefixes)
    except ValueError as exc:
        raise AnsibleFilterError("iptables_without_chains: %s" % exc)


class FilterModule(object):

    def filters(self):
        return {"iptables_without_chains": iptables_without_chains}

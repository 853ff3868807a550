#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: validate
short_description: Validate the inventory and publish the platform spec as a fact
version_added: 0.1.0
description:
  - Reads every C(plinth_*) variable, the inventory groups and each host's C(ansible_host),
    checks them against the inventory schema and its cross-checks, and sets the normalized
    platform spec as a fact.
  - Fails with every problem at once; each names the variable path, the bad value and the rule.
    Secret values are never echoed.
  - Runs on the controller and touches no host, so a playbook can call it before any other task.
author:
  - Plinth contributors (@plinth)
options:
  fact:
    description: Name of the fact that receives the spec.
    type: str
    default: plinth_spec
attributes:
  action:
    description: Implemented as an action plugin that runs on the controller.
    support: full
  check_mode:
    description: Changes nothing, so it validates and sets the fact in check mode too.
    support: full
  diff_mode:
    description: Sets a fact and writes nothing, so there is no diff.
    support: none
  platform:
    description: Reads only inventory data on the controller, whatever the targets run.
    support: full
    platforms: all
notes:
  - This module is implemented as an action plugin and runs on the controller.
"""

EXAMPLES = r"""
- name: Validate the inventory
  plinth.platform.validate:

- name: Render the tree from the spec
  plinth.platform.gitops_tree:
    dest: build/gitops
    files: "{{ plinth_spec | plinth.platform.gitops_files }}"
"""

RETURN = r"""
msg:
  description: On failure, every problem found, one per line.
  returned: failure
  type: str
  sample: |-
    invalid inventory (1 problem):
      - plinth_components.kong.replicas: got 4; 4 replicas need 4 hosts in pool 'gateway' (group kong_nodes has 3)
ansible_facts:
  description: The normalized spec, under the name given by O(fact).
  returned: success
  type: dict
"""

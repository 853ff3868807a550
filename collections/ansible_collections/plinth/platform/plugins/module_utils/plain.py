# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Plain data at the boundary with Ansible.

What a filter, an action or a module receives from Ansible is not plain Python:
strings tagged with their origin or marked unsafe, lazily templated dicts and
lists. PyYAML's safe dumper refuses those types, and code that copies or
compares values should not depend on them. Everything from Ansible goes through
``plain`` once, where it enters a plugin; the logic behind it sees only dicts,
lists, strings, numbers, booleans and None.
"""

from __future__ import absolute_import, annotations, division, print_function

import json

__metaclass__ = type


def plain(value):
    """``value`` rebuilt from JSON types only; anything JSON has no type for becomes its string."""
    return json.loads(json.dumps(value, default=str))

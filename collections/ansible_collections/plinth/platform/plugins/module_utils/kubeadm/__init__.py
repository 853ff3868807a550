# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Platform spec -> kubeadm configuration (kubeadm.k8s.io/v1beta4), one module per concern.

* ``options``: the role-level settings, their defaults and rules.  Problems
  are named ``<prefix><option>`` with a prefix the caller passes: the names of
  the roles' variables are the filters' business, not this package's.
* ``documents``: the documents of ``kubeadm init`` and ``kubeadm join``;
  each node registers with the labels and taints of ``placement``.
* ``credentials``: bootstrap tokens, CA pins and certificate keys, read from
  kubeadm's output and checked for form without being shown.
* ``apiserver_files``: the encryption-at-rest configuration and the audit
  policy kube-apiserver reads on every control-plane host.
* ``text``: all of it as the YAML text the hosts read.
"""

from __future__ import absolute_import, annotations, division, print_function

# The options every role's defaults mirror (checked by the role tests).
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm.options import (  # noqa: F401
    OPTIONS, default_options)

__metaclass__ = type

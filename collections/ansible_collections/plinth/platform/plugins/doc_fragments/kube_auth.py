# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How Plinth's modules reach the Kubernetes API (plugins/module_utils/kube_api.py).
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to the kubeconfig. When omitted, the value of E(K8S_AUTH_KUBECONFIG) is used, and
        then the Kubernetes client's default (E(KUBECONFIG) or C(~/.kube/config)).
    type: path
  context:
    description: Context in the kubeconfig; the default is taken from E(K8S_AUTH_CONTEXT), then the current context.
    type: str
requirements:
  - kubernetes (the Python client), on the host the module runs on
"""

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # How the vault_* actions reach the Vault servers (plugins/plugin_utils/vault_stage.py).
    DOCUMENTATION = r"""
options:
  addresses:
    description: Base URLs of the servers; when empty, every server pod is reached through the API server.
    type: list
    elements: str
  ca_path:
    description: CA bundle that verifies the servers' certificates when O(addresses) are https.
    type: path
  pods:
    description: The server pods, reached through the API server's pod proxy with O(kubeconfig).
    type: dict
    suboptions:
      namespace:
        description: Namespace of the pods.
        type: str
      labels:
        description: Labels that select the server pods.
        type: dict
      port:
        description: The API port.
        type: int
      scheme:
        description: http or https.
        type: str
        default: http
      count:
        description: Pods to wait for.
        type: int
  kubeconfig:
    description: Kubeconfig for the API server when O(addresses) is empty (defaults to E(K8S_AUTH_KUBECONFIG)).
    type: path
  context:
    description: Kubeconfig context.
    type: str
  timeout:
    description: Seconds to wait for the server pods to run.
    type: int
    default: 600
requirements:
  - kubernetes (the Python client) on the controller, to reach the servers through the API server
"""

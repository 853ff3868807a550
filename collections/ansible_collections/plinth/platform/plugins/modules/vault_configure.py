#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vault_configure
short_description: Configure Vault for the platform's SecretStores and seed its secrets
version_added: 0.2.0
description:
  - On the active server, makes sure of the KV version 2 engine, the Kubernetes auth method and its
    configuration, one policy and one Kubernetes-auth role per namespace that reads secrets (each policy reads
    exactly that namespace's paths), removes Plinth's policies and roles that are no longer wanted, and writes
    each seeded secret whose stored value differs.
  - The token is the one in O(token_var), else the initial root token from O(keys_file), else a root token
    generated from the unseal keys for this run and revoked at its end (also in check mode, where it only reads).
    The initial root token is revoked after configuration, and dropped from the keys file, unless
    O(keep_root_token).
  - Secret values are read from the variable O(secrets_var) names, so they never appear in the task's arguments,
    its result or its diff, at any verbosity; the diff names paths and keys only.
author:
  - Plinth contributors (@plinth)
extends_documentation_fragment:
  - plinth.platform.vault_servers
options:
  access:
    description: What each namespace may read, as returned by the P(plinth.platform.vault_access#filter) filter.
    type: dict
    required: true
  secrets_var:
    description:
      - Name of the variable that maps KV paths to a mapping of key to value.
      - Every path must be read by an ExternalSecret of the tree.
    type: str
  kubernetes:
    description: The Kubernetes auth method's configuration.
    type: dict
    suboptions:
      host:
        description: The API server Vault sends TokenReviews to.
        type: str
        default: https://kubernetes.default.svc
      ca_cert:
        description: PEM CA of that API server; in a pod Vault reads its own.
        type: str
      token_reviewer_jwt_var:
        description:
          - Name of the variable holding a reviewer token (bound to C(system:auth-delegator)).
          - In a pod Vault uses its own ServiceAccount token.
        type: str
  role_ttl:
    description: Token TTL of each Kubernetes-auth role, in seconds.
    type: int
    default: 3600
  keys_file:
    description: The keys file P(plinth.platform.vault_unseal#module) writes.
    type: path
  token_var:
    description: Name of a variable (ansible-vault encrypted) holding a Vault token to use instead.
    type: str
  keep_root_token:
    description: Keep the initial root token (in Vault and in the keys file) instead of revoking it.
    type: bool
    default: false
attributes:
  action:
    description: Implemented as an action plugin on the controller.
    support: full
  check_mode:
    description: Compares everything and reports what it would change; writes nothing but a temporary token.
    support: full
  diff_mode:
    description: Lists what changes; for secrets the paths and keys, never the values.
    support: full
  platform:
    description: Runs on the controller.
    support: full
    platforms: all
notes:
  - This module is implemented as an action plugin and runs on the controller.
"""

EXAMPLES = r"""
- name: Configure Vault and seed the secrets
  plinth.platform.vault_configure:
    keys_file: build/production/vault-keys.yml
    access: "{{ plinth_spec | plinth.platform.vault_access }}"
    secrets_var: vault_secrets
    pods: {namespace: vault, labels: {app.kubernetes.io/name: vault, component: server}, port: 8200}
"""

RETURN = r"""
changes:
  description: What was (or would be) changed, one line each; secrets by path.
  returned: always
  type: list
  elements: str
server:
  description: The server that was configured.
  returned: success
  type: str
secrets:
  description: The seeded paths.
  returned: success
  type: list
  elements: str
consumers:
  description: Namespaces given a policy and a role.
  returned: success
  type: list
  elements: str
"""

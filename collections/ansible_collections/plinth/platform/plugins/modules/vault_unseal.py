#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vault_unseal
short_description: Initialise Vault once and unseal every sealed server
version_added: 0.2.0
description:
  - Asks every Vault server for its seal status. When none is initialised, initialises the first with
    O(init.key_shares) and O(init.key_threshold) (recovery keys with an auto-unseal seal), and writes the keys
    and the initial root token to O(keys_file) on the controller before anything else happens, encrypted with
    ansible-vault under the play's vault password, mode 0600. With O(init.pgp_keys) the keys are handed to
    those PGP keys instead and the file holds only their encrypted form.
  - Then submits the unseal keys to every sealed server, so a re-run heals a restarted pod. Servers with an
    auto-unseal seal are only waited for.
  - Refuses to initialise without a way to keep the keys (no vault password and no PGP keys), and refuses a
    keys file when no server is initialised (the file belongs to another Vault).
  - No key or token is ever returned or logged.
author:
  - Plinth contributors (@plinth)
extends_documentation_fragment:
  - plinth.platform.vault_servers
options:
  keys_file:
    description: Path of the keys file on the controller.
    type: path
    required: true
  init:
    description: How to initialise; read only when no server is initialised yet.
    type: dict
    suboptions:
      key_shares:
        description: Number of key shares.
        type: int
        default: 5
      key_threshold:
        description: Shares needed to unseal; between 1 and O(init.key_shares).
        type: int
        default: 3
      pgp_keys:
        description: One base64 PGP public key per share; each share is encrypted to its key.
        type: list
        elements: str
      root_token_pgp_key:
        description: A base64 PGP public key that the initial root token is encrypted to.
        type: str
  unseal_keys_var:
    description:
      - Name of a variable (ansible-vault encrypted) holding the unseal keys, for keys handed to PGP keys.
      - The variable is read by name, so its value never appears among the task's arguments.
    type: str
attributes:
  action:
    description: Implemented as an action plugin on the controller, where the keys stay.
    support: full
  check_mode:
    description: Reports whether it would initialise and which servers it would unseal.
    support: full
  diff_mode:
    description: No diff; the keys are never shown.
    support: none
  platform:
    description: Runs on the controller.
    support: full
    platforms: all
notes:
  - This module is implemented as an action plugin and runs on the controller.
"""

EXAMPLES = r"""
- name: Initialise once and unseal every server
  plinth.platform.vault_unseal:
    keys_file: build/production/vault-keys.yml
    init: {key_shares: 5, key_threshold: 3}
    pods: {namespace: vault, labels: {app.kubernetes.io/name: vault, component: server}, port: 8200, count: 3}
"""

RETURN = r"""
servers:
  description: Each server's name and its state when the task started.
  returned: always
  type: list
  elements: dict
initialized:
  description: Whether this run initialised Vault.
  returned: always
  type: bool
unsealed:
  description: Servers this run unsealed.
  returned: always
  type: list
  elements: str
"""

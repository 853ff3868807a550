# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Who may read what in Vault: one consumer per namespace that holds ExternalSecrets.

``secret_access(spec)`` reads the ExternalSecrets of the GitOps tree itself (the raw
manifests, no Helm values built), so the Vault roles and policies made from it and the
SecretStores the tree carries can never disagree: each namespace's SecretStore logs in
with role ``<vault_role_prefix><namespace>`` as its reader ServiceAccount, and that
role's policy (same name) must admit exactly the KV paths listed for the namespace.
ExternalSecrets that read a ClusterSecretStore (a cloud secret manager) are left out.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import external_secrets

__metaclass__ = type


def secret_access(spec):
    """``{kv_mount, auth_mount, service_account, prefix, consumers}`` for the Vault side of the tree's SecretStores.

    ``consumers`` holds, sorted by namespace, ``{namespace, role, policy, paths}``: ``paths`` are
    the sorted KV paths (relative to ``kv_mount``) that the namespace's ExternalSecrets read.
    """
    settings = spec["components"]["external_secrets"]
    paths = {}
    for doc in gitops.raw_manifests(spec):
        # ExternalSecrets that read a cloud store's ClusterSecretStore are no business of Vault's.
        if doc["kind"] == "ExternalSecret" and external_secrets.reads_vault(doc):
            paths.setdefault(doc["metadata"]["namespace"], set()).update(remote_keys(doc))
    consumers = []
    for namespace, keys in sorted(paths.items()):
        role = external_secrets.role(spec, namespace)
        consumers.append({"namespace": namespace, "role": role, "policy": role, "paths": sorted(keys)})
    return {
        "kv_mount": settings["vault_kv_path"],
        "auth_mount": external_secrets.VAULT_AUTH_MOUNT,
        "service_account": settings["reader_service_account"],
        # Every role and policy name starts with it: the vault stage removes the ones it no longer wants.
        "prefix": settings["vault_role_prefix"],
        "consumers": consumers,
    }


def remote_keys(external_secret):
    """The Vault paths an ExternalSecret reads: every ``data[].remoteRef.key`` and ``dataFrom[].extract.key``."""
    spec = external_secret.get("spec") or {}
    keys = set(item["remoteRef"]["key"] for item in spec.get("data") or [])
    keys.update(item["extract"]["key"] for item in spec.get("dataFrom") or [] if "extract" in item)
    return keys

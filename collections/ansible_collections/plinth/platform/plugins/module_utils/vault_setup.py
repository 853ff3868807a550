# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""What the ``vault`` stage makes true in Vault, and the steps that get it there.

``access`` is ``secret_access(spec)``: the KV mount, the Kubernetes-auth mount,
the reader ServiceAccount and, per namespace that holds ExternalSecrets, the
policy and role names and the KV paths that namespace reads.  Each namespace's
policy grants ``read`` on exactly those paths, so no SecretStore can read
another namespace's secrets.  Policies and roles whose names carry Plinth's
prefix but are no longer wanted are removed; nothing else is touched.

Every step compares first and writes only what differs, so a second run
changes nothing and check mode reports exactly what a run would do.  Secret
values never leave this module: reports name paths and keys only.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

KV_OPTIONS_VERSION = "2"
ROLE_TTL = 3600


def policy_text(kv_mount, paths):
    """Read-only access to exactly ``paths`` of the KV v2 engine at ``kv_mount``."""
    blocks = ['path "%s/data/%s" {\n  capabilities = ["read"]\n}\n' % (kv_mount, path) for path in sorted(paths)]
    return "# Managed by Plinth: this namespace's SecretStore reads these paths and no others.\n" + "\n".join(blocks)


def role_body(access, consumer, ttl=ROLE_TTL):
    return {
        "bound_service_account_names": [access["service_account"]],
        "bound_service_account_namespaces": [consumer["namespace"]],
        "token_policies": [consumer["policy"]],
        "token_ttl": ttl,
    }


def _role_differs(current, wanted):
    if current is None:
        return True
    for key, value in wanted.items():
        have = current.get(key)
        if isinstance(value, list):
            if sorted(have or []) != sorted(value):
                return True
        elif have != value:
            return True
    return False


BUILT_IN_POLICIES = frozenset(("default", "root"))


def owned(access, name):
    """Whether a policy or role of this name is Plinth's to remove when no longer wanted."""
    return bool(access["prefix"]) and name.startswith(access["prefix"]) and name not in BUILT_IN_POLICIES


class Run:
    """One configuration pass over ``vault``; ``check`` reports without writing."""

    def __init__(self, vault, check=False):
        self.vault = vault
        self.check = check
        self.changes = []

    def change(self, what, call, *args):
        self.changes.append(what)
        if not self.check:
            call(*args)

    def kv_engine(self, mount):
        mounts = self.vault.get("sys/mounts")
        current = mounts.get(mount + "/")
        if current is None:
            self.change("enable KV v2 at %s/" % mount, self.vault.post, "sys/mounts/" + mount,
                        {"type": "kv", "options": {"version": KV_OPTIONS_VERSION}})
            return
        version = str((current.get("options") or {}).get("version") or "1")
        if current.get("type") != "kv" or version != KV_OPTIONS_VERSION:
            raise ValueError("Vault mount %s/ is %s version %s; Plinth needs KV version 2 there (move the data "
                             "and disable that mount, or set plinth_components.external_secrets.vault_kv_path)"
                             % (mount, current.get("type"), version))

    def kubernetes_auth(self, mount, config):
        methods = self.vault.get("sys/auth")
        if mount + "/" not in methods:
            self.change("enable Kubernetes auth at %s/" % mount, self.vault.post, "sys/auth/" + mount,
                        {"type": "kubernetes"})
            current = {}
        else:
            current = self.vault.get("auth/%s/config" % mount, missing_ok=True) or {}
        wanted = dict((k, v) for k, v in config.items() if k != "token_reviewer_jwt" and v is not None)
        differs = any(current.get(k) != v for k, v in wanted.items())
        if config.get("token_reviewer_jwt") and not current.get("token_reviewer_jwt_set"):
            differs = True
        if differs:
            body = dict((k, v) for k, v in config.items() if v is not None)
            self.change("configure Kubernetes auth at %s/" % mount, self.vault.post,
                        "auth/%s/config" % mount, body)

    def policies(self, access):
        wanted = dict((c["policy"], policy_text(access["kv_mount"], c["paths"])) for c in access["consumers"])
        for name, text in sorted(wanted.items()):
            current = self.vault.get("sys/policies/acl/" + name, missing_ok=True)
            if current is None or current.get("policy") != text:
                self.change("write policy %s" % name, self.vault.put, "sys/policies/acl/" + name, {"policy": text})
        for name in self.vault.list("sys/policies/acl"):
            if owned(access, name) and name not in wanted:
                self.change("remove policy %s" % name, self.vault.delete, "sys/policies/acl/" + name)

    def roles(self, access, ttl=ROLE_TTL):
        base = "auth/%s/role/" % access["auth_mount"]
        wanted = dict((c["role"], role_body(access, c, ttl)) for c in access["consumers"])
        for name, body in sorted(wanted.items()):
            if _role_differs(self.vault.get(base + name, missing_ok=True), body):
                self.change("write role %s" % name, self.vault.post, base + name, body)
        for name in self.vault.list(base.rstrip("/")):
            if owned(access, name) and name not in wanted:
                self.change("remove role %s" % name, self.vault.delete, base + name)

    def secrets(self, kv_mount, values):
        """Write each path whose stored data differs from ``values[path]``; returns the diff lines."""
        lines = []
        for path, data in sorted(values.items()):
            current = self.vault.get("%s/data/%s" % (kv_mount, path), missing_ok=True)
            stored = (current or {}).get("data") or {}
            if stored == data:
                continue
            lines.append(describe_secret_change(path, stored, data))
            self.change("write secret %s" % path, self.vault.post, "%s/data/%s" % (kv_mount, path), {"data": data})
        return lines


def describe_secret_change(path, before, after):
    """One line naming the keys that change, never their values."""
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(after) & set(before) if after[k] != before[k])
    parts = []
    for word, keys in (("new", added), ("changed", changed), ("dropped", removed)):
        if keys:
            parts.append("%s: %s" % (word, ", ".join(keys)))
    return "%s: %s" % (path, "; ".join(parts) if parts else "created")


def check_secret_values(values, access, variable):
    """Problems with the seeding variable, by path and rule; values are never quoted."""
    if values is None:
        return []
    if not isinstance(values, dict):
        return ["%s: must be a mapping of Vault KV path to {key: value}" % variable]
    readable = set(p for c in access["consumers"] for p in c["paths"])
    errors = []
    for path in sorted(values, key=str):
        where = "%s[%r]" % (variable, path)
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
            errors.append("%s: must be a relative KV path without '..'" % where)
            continue
        if path not in readable:
            errors.append("%s: no ExternalSecret in the tree reads this path (readable paths: %s)"
                          % (where, ", ".join(sorted(readable)) or "none"))
        data = values[path]
        if not isinstance(data, dict) or not data:
            errors.append("%s: must be a non-empty mapping of key to value" % where)
            continue
        for key, value in sorted(data.items(), key=lambda kv: str(kv[0])):
            if not isinstance(key, str) or not key:
                errors.append("%s: every key must be a non-empty string" % where)
            elif not isinstance(value, (str, int, float)) or isinstance(value, bool):
                errors.append("%s.%s: must be a string (got a %s)" % (where, key, type(value).__name__))
    return errors


def plain_secret_values(values):
    """Seeded values as Vault stores them: every value a string."""
    return dict((path, dict((key, str(value)) for key, value in data.items()))
                for path, data in (values or {}).items())

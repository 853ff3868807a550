# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Configure an unsealed Vault for the platform and seed its secrets; see modules/vault_configure.py."""

from __future__ import absolute_import, annotations, division, print_function

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.plinth.platform.plugins.module_utils import vault_api, vault_setup
from ansible_collections.plinth.platform.plugins.plugin_utils import vault_stage

__metaclass__ = type

LEADER_TIMEOUT = 120


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = vault_stage.SERVER_ARGS | frozenset((
        "keys_file", "token_var", "keep_root_token", "access", "kubernetes", "secrets_var", "role_ttl"))

    def _variable(self, task_vars, name):
        """A variable the task names rather than passes, so its value never sits in the task's arguments."""
        if not name or name not in task_vars:
            return None
        return self._templar.template(task_vars[name])

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        access = args.get("access") or {}
        for key in ("kv_mount", "auth_mount", "service_account", "prefix", "consumers"):
            if key not in access:
                raise AnsibleActionFail("access: missing %r (give the plinth.platform.vault_access filter's result)"
                                        % key)
        secrets_var = args.get("secrets_var")
        values = self._variable(task_vars, secrets_var)
        errors = vault_setup.check_secret_values(values, access, secrets_var)
        if errors:
            raise AnsibleActionFail("\n".join(errors))
        values = vault_setup.plain_secret_values(values)
        kubernetes = dict(args.get("kubernetes") or {})
        reviewer = self._variable(task_vars, kubernetes.pop("token_reviewer_jwt_var", None))
        auth_config = {"kubernetes_host": kubernetes.get("host") or "https://kubernetes.default.svc",
                       "kubernetes_ca_cert": kubernetes.get("ca_cert") or None,
                       "token_reviewer_jwt": reviewer or None}

        keys_file = args.get("keys_file")
        keys = vault_stage.read_keys(self._loader, keys_file) if keys_file else None
        try:
            vault = self._active(vault_stage.servers(args))
            if vault is None:
                # Check mode before the first unseal: nothing to compare with yet.
                result.update(changed=True, changes=["configure Vault once it is unsealed"],
                              msg="no Vault server is unsealed yet; a run would configure it after unsealing")
                return result
            token, temporary = self._token(vault, keys, self._variable(task_vars, args.get("token_var")))
            vault.token = token
            run = vault_setup.Run(vault, check=self._task.check_mode)
            try:
                run.kv_engine(access["kv_mount"])
                run.kubernetes_auth(access["auth_mount"], auth_config)
                run.policies(access)
                run.roles(access, args.get("role_ttl") or vault_setup.ROLE_TTL)
                secret_lines = run.secrets(access["kv_mount"], values)
            finally:
                if temporary:
                    vault.revoke_self()
            revoked = self._revoke_initial_root(vault, keys, keys_file, args.get("keep_root_token"))
        except (vault_api.VaultError, TimeoutError, OSError, ValueError) as error:
            raise AnsibleActionFail("Vault: %s" % error)

        changes = run.changes + (["revoke the initial root token"] if revoked else [])
        result.update(changed=bool(changes), changes=changes, server=vault.name,
                      secrets=sorted(values), consumers=[c["namespace"] for c in access["consumers"]])
        if self._task.diff and changes:
            lines = [line for line in changes if not line.startswith("write secret ")] + secret_lines
            result["diff"] = [{"prepared": "\n".join(lines) + "\n"}]
        return result

    def _active(self, servers):
        """The active server (standbys would forward; the active one answers without a hop)."""
        if self._task.check_mode and all(s.seal_status()["sealed"] for s in servers):
            return None

        def leader():
            unsealed = [s for s in servers if not s.seal_status()["sealed"]]
            if not unsealed:
                return None
            for server in unsealed:
                answer = server.get("sys/leader")
                if answer.get("is_self"):
                    return server
            return unsealed[0] if not unsealed[0].get("sys/leader").get("ha_enabled") else None
        return vault_api.wait_for(leader, LEADER_TIMEOUT, what="an unsealed, active Vault server "
                                                               "(run the unseal step first)")

    def _token(self, vault, keys, operator_token):
        """``(token, temporary)``: the operator's token, the kept root token, or a fresh root token."""
        if operator_token:
            return operator_token, False
        if keys and keys.get("root_token") and not keys.get("root_token_pgp"):
            return keys["root_token"], False
        if not keys or keys.get("pgp") or not keys.get("keys"):
            raise AnsibleActionFail("no Vault token: the keys file holds no usable keys; give a token in the "
                                    "variable named by token_var (encrypted with ansible-vault)")
        return vault.generate_root(keys["keys"]), True

    def _revoke_initial_root(self, vault, keys, keys_file, keep):
        if keep or not keys or not keys.get("root_token") or keys.get("root_token_pgp"):
            return False
        if self._task.check_mode:
            return True
        initial = vault_api.Vault(vault.transport, token=keys["root_token"])
        try:
            initial.revoke_self()
        except vault_api.VaultError as error:
            if error.status != 403:
                raise
        # The token is gone from Vault; drop it from the file so no later run tries it.
        vault_stage.write_keys(self._loader, keys_file, dict((k, v) for k, v in keys.items() if k != "root_token"),
                               encrypt=vault_stage.can_encrypt(self._loader))
        return True

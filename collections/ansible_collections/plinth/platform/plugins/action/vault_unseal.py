# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Initialise Vault once, keep its keys encrypted on the controller, and unseal every sealed server."""

from __future__ import absolute_import, annotations, division, print_function

import datetime

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.plinth.platform.plugins.module_utils import vault_api
from ansible_collections.plinth.platform.plugins.plugin_utils import vault_stage

__metaclass__ = type

UNSEAL_TIMEOUT = 120


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = vault_stage.SERVER_ARGS | frozenset(("keys_file", "init", "unseal_keys_var"))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        keys_file = args.get("keys_file")
        if not keys_file:
            raise AnsibleActionFail("keys_file: required (where the controller keeps Vault's keys)")
        init = _init_options(args.get("init") or {})
        try:
            servers = vault_stage.servers(args)
            statuses = [server.seal_status() for server in servers]
        except (vault_api.VaultError, TimeoutError, OSError) as error:
            raise AnsibleActionFail("Vault: %s" % error)

        report = {"servers": [dict(server=s.name, initialized=st["initialized"], sealed=st["sealed"])
                              for s, st in zip(servers, statuses)], "initialized": False, "unsealed": []}
        keys = vault_stage.read_keys(self._loader, keys_file)
        if not any(st["initialized"] for st in statuses):
            if keys:
                raise AnsibleActionFail("keys_file %s holds keys, but no Vault server is initialised: these keys "
                                        "belong to another Vault (move the file away to initialise anew)" % keys_file)
            report["initialized"] = True
            if self._task.check_mode:
                result.update(changed=True, msg="would initialise Vault and unseal %d servers" % len(servers), **report)
                return result
            keys = self._initialise(servers[0], init, keys_file)
            statuses[0] = servers[0].seal_status()
        elif keys is None and not init.get("pgp_keys"):
            keys = {}
        unseal_keys = self._unseal_keys(keys, task_vars or {}, args.get("unseal_keys_var"))

        sealed = [s for s, st in zip(servers, statuses) if st["sealed"]]
        if sealed and statuses[0].get("type", "shamir") != "shamir":
            # Auto-unseal: the servers unseal themselves; wait for them instead.
            self._wait_unsealed(sealed)
        elif sealed:
            if not unseal_keys:
                raise AnsibleActionFail("%d Vault servers are sealed and there are no unseal keys: give them in the "
                                        "variable %s (they were handed to PGP keys) or restore %s"
                                        % (len(sealed), args.get("unseal_keys_var") or "unseal_keys_var", keys_file))
            if self._task.check_mode:
                report["unsealed"] = [s.name for s in sealed]
                result.update(changed=True, msg="would unseal %d servers" % len(sealed), **report)
                return result
            threshold = (keys or {}).get("threshold") or max(st.get("t") or 0 for st in statuses)
            for server in sealed:
                self._unseal(server, unseal_keys, threshold)
                report["unsealed"].append(server.name)
        result.update(changed=bool(report["initialized"] or report["unsealed"]), **report)
        return result

    def _initialise(self, server, init, keys_file):
        pgp = bool(init.get("pgp_keys"))
        if not pgp and not vault_stage.can_encrypt(self._loader):
            raise AnsibleActionFail(
                "Vault is not initialised and its keys must be kept encrypted: run with a vault password "
                "(--vault-password-file, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE), or hand the keys "
                "to PGP keys with plinth_components.vault.init.pgp_keys")
        if pgp and not vault_stage.can_encrypt(self._loader) and not init.get("root_token_pgp_key"):
            raise AnsibleActionFail(
                "init.pgp_keys without a vault password: the root token would be stored in the clear; "
                "set plinth_components.vault.init.root_token_pgp_key as well, or run with a vault password")
        encrypt = vault_stage.can_encrypt(self._loader)
        try:
            vault_stage.check_writable(self._loader, keys_file, encrypt)
        except (OSError, AnsibleError) as error:
            raise AnsibleActionFail("keys_file %s: cannot be written (%s); Vault was not initialised"
                                    % (keys_file, error))
        auto = server.seal_status().get("type", "shamir") != "shamir"
        body = _init_body(init, auto)
        try:
            answer = server.init(body)
        except vault_api.VaultError as error:
            raise AnsibleActionFail("Vault: %s" % error)
        keys = {
            "seal": "auto" if auto else "shamir",
            "keys": answer.get("recovery_keys_base64" if auto else "keys_base64") or [],
            "threshold": init["key_threshold"],
            "shares": init["key_shares"],
            "pgp": pgp,
            "root_token": answer["root_token"],
            "root_token_pgp": bool(init.get("root_token_pgp_key")),
            "initialised": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        # Written before anything else happens: these keys exist nowhere else.
        try:
            vault_stage.write_keys(self._loader, keys_file, keys, encrypt=encrypt)
        except (OSError, AnsibleError) as error:
            raise AnsibleActionFail("Vault IS INITIALISED but its keys could not be written to %s (%s): they are "
                                    "lost; stop the Vault pods, clear its storage and run again" % (keys_file, error))
        return keys

    def _unseal_keys(self, keys, task_vars, variable):
        if variable and task_vars.get(variable):
            value = self._templar.template(task_vars[variable])
            if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
                raise AnsibleActionFail("%s: must be a list of unseal keys (strings)" % variable)
            return value
        if keys and not keys.get("pgp") and keys.get("seal") == "shamir":
            return keys["keys"]
        return []

    def _unseal(self, server, keys, threshold):
        try:
            # A Raft server joins its cluster through its unseal, and takes keys only once the
            # active server has answered its join (it reports initialised then).
            vault_api.wait_for(lambda: server.seal_status()["initialized"], UNSEAL_TIMEOUT, interval=1,
                               what="Vault server %s to join its cluster" % server.name)
            server.unseal_with(keys, threshold)
            vault_api.wait_for(lambda: not server.seal_status()["sealed"], UNSEAL_TIMEOUT, interval=1,
                               what="Vault server %s to unseal" % server.name)
        except (vault_api.VaultError, TimeoutError, OSError) as error:
            raise AnsibleActionFail("Vault: unsealing %s: %s" % (server.name, error))

    def _wait_unsealed(self, servers):
        for server in servers:
            try:
                vault_api.wait_for(lambda: not server.seal_status()["sealed"], UNSEAL_TIMEOUT,
                                   what="Vault server %s to auto-unseal" % server.name)
            except TimeoutError as error:
                raise AnsibleActionFail("Vault: %s; check the seal's configuration and reachability" % error)


def _init_options(init):
    options = {"key_shares": init.get("key_shares", 5), "key_threshold": init.get("key_threshold", 3),
               "pgp_keys": init.get("pgp_keys") or [], "root_token_pgp_key": init.get("root_token_pgp_key")}
    if not 1 <= options["key_threshold"] <= options["key_shares"]:
        raise AnsibleActionFail("init.key_threshold: got %r; must be between 1 and key_shares (%r)"
                                % (options["key_threshold"], options["key_shares"]))
    if options["pgp_keys"] and len(options["pgp_keys"]) != options["key_shares"]:
        raise AnsibleActionFail("init.pgp_keys: got %d keys; must be one per share (key_shares %d)"
                                % (len(options["pgp_keys"]), options["key_shares"]))
    return options


def _init_body(init, auto):
    prefix = "recovery_" if auto else "secret_"
    body = {prefix + "shares": init["key_shares"], prefix + "threshold": init["key_threshold"]}
    if init["pgp_keys"]:
        body["recovery_pgp_keys" if auto else "pgp_keys"] = init["pgp_keys"]
    if init["root_token_pgp_key"]:
        body["root_token_pgp_key"] = init["root_token_pgp_key"]
    return body

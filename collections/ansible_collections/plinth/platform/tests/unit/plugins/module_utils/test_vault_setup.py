# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The pure parts of the vault stage: policies, roles, seeding checks, the generate-root decoding.

The steps that talk to Vault run against a real OpenBao cluster in the secrets scenario.
"""

from __future__ import absolute_import, annotations, division, print_function

import base64

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import vault_api, vault_setup

__metaclass__ = type

ACCESS = {
    "kv_mount": "secret", "auth_mount": "kubernetes", "service_account": "vault-secrets-reader",
    "prefix": "plinth-", "consumers": [
        {"namespace": "kong", "role": "plinth-kong", "policy": "plinth-kong", "paths": ["platform/kong/postgres"]},
        {"namespace": "shop", "role": "plinth-shop", "policy": "plinth-shop", "paths": ["apps/shop/db", "apps/shop/api"]},
    ],
}


def test_a_policy_reads_exactly_its_paths_and_nothing_else():
    text = vault_setup.policy_text("secret", ["apps/shop/db", "apps/shop/api"])
    assert text.count('capabilities = ["read"]') == 2
    assert 'path "secret/data/apps/shop/api"' in text and 'path "secret/data/apps/shop/db"' in text
    assert "*" not in text and "+" not in text
    assert text.index("apps/shop/api") < text.index("apps/shop/db")


def test_a_role_binds_the_reader_account_of_its_own_namespace_only():
    body = vault_setup.role_body(ACCESS, ACCESS["consumers"][1])
    assert body == {"bound_service_account_names": ["vault-secrets-reader"],
                    "bound_service_account_namespaces": ["shop"], "token_policies": ["plinth-shop"],
                    "token_ttl": 3600}


def test_role_comparison_ignores_order_and_fields_vault_adds():
    wanted = vault_setup.role_body(ACCESS, ACCESS["consumers"][0])
    stored = dict(wanted, token_policies=["plinth-kong"], token_max_ttl=0, alias_name_source="serviceaccount_uid")
    assert not vault_setup._role_differs(stored, wanted)
    assert vault_setup._role_differs(dict(stored, bound_service_account_namespaces=["shop"]), wanted)
    assert vault_setup._role_differs(None, wanted)


def test_the_secret_diff_names_keys_never_values():
    line = vault_setup.describe_secret_change("apps/shop/db", {"user": "u", "password": "old-pass", "x": "1"},
                                              {"user": "u", "password": "new-pass", "token": "t0k"})
    assert line == "apps/shop/db: new: token; changed: password; dropped: x"
    assert "old-pass" not in line and "new-pass" not in line and "t0k" not in line
    assert vault_setup.describe_secret_change("a/b", {}, {"k": "v"}) == "a/b: new: k"


@pytest.mark.parametrize("values, message", [
    ({"apps/other/db": {"password": "hunter2"}}, "no ExternalSecret in the tree reads this path"),
    ({"../etc": {"k": "hunter2"}}, "must be a relative KV path without '..'"),
    ({"apps/shop/db": {}}, "must be a non-empty mapping"),
    ({"apps/shop/db": {"password": ["hunter2"]}}, "apps/shop/db'].password: must be a string (got a list)"),
    ({"apps/shop/db": {"password": True}}, "must be a string (got a bool)"),
    (["apps/shop/db"], "must be a mapping of Vault KV path"),
])
def test_bad_seeding_input_is_refused_by_path_and_rule_without_the_value(values, message):
    errors = vault_setup.check_secret_values(values, ACCESS, "vault_secrets")
    assert errors and any(message in error for error in errors), errors
    assert all(error.startswith("vault_secrets") for error in errors)
    assert not any("hunter2" in error for error in errors)


def test_good_seeding_input_passes_and_values_become_strings():
    values = {"apps/shop/db": {"password": "p", "port": 5432}, "platform/kong/postgres": {"password": "k"}}
    assert vault_setup.check_secret_values(values, ACCESS, "vault_secrets") == []
    assert vault_setup.plain_secret_values(values)["apps/shop/db"] == {"password": "p", "port": "5432"}
    assert vault_setup.check_secret_values(None, ACCESS, "vault_secrets") == []


@pytest.mark.parametrize("pad", [True, False])
def test_generate_root_token_decoding_is_base64_xor_the_one_time_password(pad):
    token, otp = "s.0123456789abcdefghijklmnop", "ABCDEFGHIJKLMNOPQRSTUVWXYZab"
    encoded = base64.b64encode(bytes(a ^ b for a, b in zip(token.encode(), otp.encode()))).decode()
    assert vault_api.decode_root_token(encoded if pad else encoded.rstrip("="), otp) == token
    with pytest.raises(ValueError, match="one-time password"):
        vault_api.decode_root_token(encoded, otp + "x")


def test_only_prefixed_names_are_plinths_to_remove_and_never_the_built_in_policies():
    assert vault_setup.owned(ACCESS, "plinth-old-namespace")
    assert not vault_setup.owned(ACCESS, "team-policy")
    assert not vault_setup.owned(dict(ACCESS, prefix="d"), "default")
    assert not vault_setup.owned(dict(ACCESS, prefix=""), "anything")

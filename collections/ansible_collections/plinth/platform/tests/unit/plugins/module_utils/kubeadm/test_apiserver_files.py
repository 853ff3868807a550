# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The files kube-apiserver reads: encryption at rest and the audit policy."""

from __future__ import absolute_import, annotations, division, print_function

import base64

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import apiserver_files, text

from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.kubeadm.helpers import (
    CONTROL_PLANE, KEY, problems)

__metaclass__ = type


def test_encryption_config_encrypts_with_the_first_key_and_reads_plain_data_last():
    old = {"name": "key-0", "secret": base64.b64encode(b"o" * 32).decode("ascii")}
    config = apiserver_files.encryption_config([KEY, old])
    rules = config["resources"]
    assert len(rules) == 1 and rules[0]["resources"] == ["secrets"]
    assert rules[0]["providers"] == [{"secretbox": {"keys": [KEY, old]}}, {"identity": {}}]

    aescbc = apiserver_files.encryption_config([KEY], {"encryption_provider": "aescbc",
                                               "encryption_resources": ["secrets", "configmaps"]})
    assert aescbc["resources"][0]["resources"] == ["secrets", "configmaps"]
    assert list(aescbc["resources"][0]["providers"][0]) == ["aescbc"]


def test_encryption_keys_are_checked_without_showing_them():
    short = {"name": "key-1", "secret": base64.b64encode(b"s" * 16).decode("ascii")}
    errors = problems(apiserver_files.encryption_config, [short, {"name": "key-1", "secret": "not base64!"}, "x"],
                      prefix=CONTROL_PLANE)
    text = "\n".join(errors)
    assert short["secret"] not in text and "not base64!" not in text
    assert "control_plane_encryption_keys[0].secret: got '<redacted, 24 characters>'; must be the base64 of a " \
           "32-byte random key for secretbox" in errors
    assert any(e.startswith("control_plane_encryption_keys[1].name: got 'key-1'; key names must be unique")
               for e in errors)
    assert any(e.startswith("control_plane_encryption_keys[2]: ") for e in errors)
    assert apiserver_files.encryption_config([short], {"encryption_provider": "aescbc"})
    assert problems(apiserver_files.encryption_config, [], prefix=CONTROL_PLANE) == [
        "control_plane_encryption_keys: got nothing; must list at least one {name, secret} key; the first one encrypts"]


def test_audit_policy_keeps_secret_bodies_out_and_records_changes():
    policy = apiserver_files.audit_policy()
    assert policy["omitStages"] == ["RequestReceived"]
    rules = policy["rules"]
    assert rules[-1] == {"level": "Metadata"}

    def first_rule(group, resource, verb):
        for rule in rules:
            if "nonResourceURLs" in rule:
                continue
            if "verbs" in rule and verb not in rule["verbs"]:
                continue
            if "users" in rule or "userGroups" in rule:
                continue
            if "resources" in rule and not any(
                    r["group"] == group and resource in r["resources"] for r in rule["resources"]):
                continue
            return rule["level"]
        raise AssertionError("no rule")

    assert first_rule("", "secrets", "create") == "Metadata"
    assert first_rule("", "secrets", "get") == "Metadata"
    assert first_rule("", "configmaps", "update") == "Metadata"
    assert first_rule("authentication.k8s.io", "tokenreviews", "create") == "Metadata"
    assert first_rule("", "pods/exec", "create") == "Metadata"
    assert first_rule("apps", "deployments", "patch") == "Request"
    assert first_rule("", "pods", "delete") == "Request"
    assert first_rule("", "pods", "list") == "Metadata"
    assert first_rule("", "events", "create") == "None"
    assert rules[0] == {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version"]}


def test_control_plane_files_follow_the_options():
    files = apiserver_files.control_plane_files({}, [KEY])
    assert sorted(files) == ["/etc/kubernetes/audit/policy.yaml", "/etc/kubernetes/encryption/config.yaml"]
    assert files["/etc/kubernetes/audit/policy.yaml"] == apiserver_files.audit_policy()
    assert files["/etc/kubernetes/encryption/config.yaml"] == apiserver_files.encryption_config([KEY])

    assert sorted(apiserver_files.control_plane_files({"secrets_encryption": False})) == ["/etc/kubernetes/audit/policy.yaml"]
    assert apiserver_files.control_plane_files({"secrets_encryption": False, "audit": False}) == {}
    assert problems(apiserver_files.control_plane_files, {}, prefix=CONTROL_PLANE) == [
        "control_plane_encryption_keys: got nothing; must list at least one {name, secret} key; the first one encrypts"]
    assert problems(apiserver_files.control_plane_files, {}) == [
        "encryption_keys: got nothing; must list at least one {name, secret} key; the first one encrypts"]

    texts = text.control_plane_file_texts({"audit_policy_file": "/etc/plinth/audit/policy.yaml"}, [KEY])
    assert sorted(texts) == ["/etc/kubernetes/encryption/config.yaml", "/etc/plinth/audit/policy.yaml"]
    assert texts["/etc/plinth/audit/policy.yaml"].startswith("---\n# Policy, generated by Plinth.\napiVersion: ")
    assert yaml.safe_load(texts["/etc/kubernetes/encryption/config.yaml"]) == apiserver_files.encryption_config([KEY])


def test_encryption_keys_read_back_from_the_written_file():
    keys = [{"name": "key-2", "secret": base64.b64encode(b"b" * 32).decode()},
            {"name": "key-1", "secret": base64.b64encode(b"a" * 32).decode()}]
    for provider in ("secretbox", "aescbc"):
        texts = text.control_plane_file_texts({"encryption_provider": provider}, keys)
        assert apiserver_files.encryption_keys_in(texts["/etc/kubernetes/encryption/config.yaml"]) == keys


@pytest.mark.parametrize("text", ["", None, "kind: Policy\n", "resources: []\n",
                                  "resources:\n- providers:\n  - identity: {}\n"])
def test_encryption_keys_of_a_file_without_keys(text):
    assert apiserver_files.encryption_keys_in(text) == []

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""secrets: the one detector, every shape it must see, and what it must leave alone."""

from __future__ import absolute_import, annotations, division, print_function

import base64

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import gitops, secrets
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

__metaclass__ = type

SECRET = "Zq8hunter2Xv"  # what must never be echoed
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow%s\n-----END RSA PRIVATE KEY-----\n" % SECRET
PGP = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQVY%s\n-----END PGP PRIVATE KEY BLOCK-----\n" % SECRET

SHAPES = [
    # (value, path of the finding, rule)
    ({"password": SECRET}, "password", secrets.RULE_KEY),
    ({"db": {"api-key": SECRET}}, "db.api-key", secrets.RULE_KEY),
    ({"passphrase": SECRET}, "passphrase", secrets.RULE_KEY),
    ({"pwd": SECRET}, "pwd", secrets.RULE_KEY),
    ({"clientSecret": SECRET}, "clientSecret", secrets.RULE_KEY),
    ({"AWS_SECRET_ACCESS_KEY": SECRET}, "AWS_SECRET_ACCESS_KEY", secrets.RULE_KEY),
    ({"pin": {"api_key": 4242424242}}, "pin.api_key", secrets.RULE_KEY),
    ({"env": [{"name": "DB_PASSWORD", "value": SECRET}]}, "env[0].value", secrets.RULE_ENV),
    ({"extraEnv": [{"name": "api-token", "value": SECRET}]}, "extraEnv[0].value", secrets.RULE_ENV),
    ({"set": [{"key": "auth.secret", "value": SECRET}]}, "set[0].value", secrets.RULE_ENV),
    ({"dsn": "connect with postgres://kong:%s@db:5432/kong please" % SECRET}, "dsn", secrets.RULE_URL),
    ({"url": "https://db.example.com/x?user=a&password=%s" % SECRET}, "url", secrets.RULE_ASSIGN),
    ({"url": "https://api.example.com/v1?access_token=%s" % SECRET}, "url", secrets.RULE_ASSIGN),
    ({"repo_url": "https://oauth2:%s@git.example.com/acme/x.git" % SECRET}, "repo_url", secrets.RULE_URL),
    ({"args": ["--db-password=%s" % SECRET]}, "args[0]", secrets.RULE_ASSIGN),
    ({"script": "export API_TOKEN=%s; run" % SECRET}, "script", secrets.RULE_ASSIGN),
    ({"config": "[db]\nhost: db\npassword: %s\n" % SECRET}, "config", secrets.RULE_ASSIGN),
    ({"tls": {"key": PEM}}, "tls.key", secrets.RULE_PEM),
    ({"ssh": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn%s\n" % SECRET}, "ssh", secrets.RULE_PEM),
    ({"signing": PGP}, "signing", secrets.RULE_PGP),
    ({"blob": base64.b64encode(PEM.encode()).decode()}, "blob", secrets.RULE_B64),
    ({"blob": base64.b64encode(PGP.encode()).decode()}, "blob", secrets.RULE_B64),
    ({"note": "ghp_" + "a1B2" * 9}, "note", "token: a GitHub token"),
    ({"note": "github_pat_" + "A1b2C3d4E5" * 3}, "note", "token: a GitHub token"),
    ({"id": "AKIA" + "ABCDEFGHIJKLMNOP"}, "id", "token: an AWS access key id"),
    ({"jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc"}, "jwt", "token: a JSON web token"),
    ({"hook": "xoxb-1234567890-abcdefghij"}, "hook", "token: a Slack token"),
    ({"hook": "https://hooks.slack.com/services/T000/B000/XXXXXXXX"}, "hook", "token: a Slack webhook"),
    ({"x": "hvs." + "C" * 24}, "x", "token: a Vault token"),
    ({"x": "glpat-" + "z" * 20}, "x", "token: a GitLab token"),
    ({"x": "sk_live_" + "9" * 24}, "x", "token: a Stripe key"),
    ({"x": "AIza" + "b" * 35}, "x", "token: a Google API key"),
    ({"tunnel": "eyJhIjoi" + "Q" * 60}, "tunnel", "token: a Cloudflare tunnel token"),
    ({"x": "AGE-SECRET-KEY-1" + "Q" * 58}, "x", "token: an age secret key"),
    ({"labels": {"ghp_" + SECRET * 3: "x"}}, "labels.<redacted key>", "token: a GitHub token"),
]


@pytest.mark.parametrize("value, path, rule", SHAPES, ids=["%s-%s" % (s[1], s[2].split(":")[0]) for s in SHAPES])
def test_every_shape_is_found(value, path, rule):
    found = secrets.findings(value)
    assert (path, rule) in found, found


@pytest.mark.parametrize("value, path, rule", SHAPES, ids=["%s-%s" % (s[1], s[2].split(":")[0]) for s in SHAPES])
def test_redacted_copy_holds_no_secret(value, path, rule):
    clean, found = secrets.redacted(value)
    assert found
    assert SECRET not in repr(clean) and "4242424242" not in repr(clean) and "ghp_" not in repr(clean)


@pytest.mark.parametrize("value", [
    {"existingSecret": "grafana-admin"},                    # names a Secret, holds none
    {"passwordKey": "password"},
    {"data": [{"secretKey": "password", "remoteRef": {"key": "kong/db", "property": "password"}}]},
    {"template": {"data": {"password": "{{ .password }}"}}},   # ExternalSecret template
    {"env": {"TOKEN": "${TUNNEL_TOKEN}"}},
    {"env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]},
    {"env": [{"name": "LOG_LEVEL", "value": "debug"}]},
    {"automountServiceAccountToken": False},
    {"password": ""},
    {"token_vault_path": "platform/cloudflared"},
    {"repoURL": "git@git.example.com:acme/platform-gitops.git"},
    {"repoURL": "https://git.example.com/acme/platform-gitops.git"},
    {"url": "https://example.com/search?q=password&page=2"},
    {"args": ["--password-file=/run/secrets/db", "--token={{ .token }}"]},
    {"config": "password: ${DB_PASSWORD}\n"},
    {"image": "registry.example.com/app@sha256:" + "a" * 64},
    {"ca": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
])
def test_references_are_left_alone(value):
    assert secrets.findings(value) == []


def test_findings_never_carry_the_value():
    text = "auth:\n  password: %s\nurl: https://u:%s@h/\nkey: %s\n" % (SECRET, SECRET, PEM.replace("\n", "\\n"))
    found = secrets.scan_file("values.yaml", text)
    assert len(found) >= 2 and SECRET not in " ".join(found)


def test_a_secret_in_a_comment_is_reported_for_the_file():
    found = secrets.scan_file("values.yaml", "a: 1\n# token ghp_%s\n" % ("x" * 36))
    assert found == ["values.yaml: token: a GitHub token"]


def test_a_secret_object_in_a_multi_document_file_is_located():
    text = "kind: ConfigMap\napiVersion: v1\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: db}\n"
    assert secrets.scan_file("projects.yaml", text) == ["projects.yaml[1]: " + secrets.RULE_SECRET_OBJECT]


def test_unreadable_yaml_is_reported_without_quoting_it():
    found = secrets.scan_file("values.yaml", "password: [unclosed %s\n" % SECRET)
    assert found == ["values.yaml: " + secrets.RULE_UNREADABLE]


def test_non_yaml_files_are_scanned_as_text():
    assert secrets.scan_file("notes.txt", PEM) == ["notes.txt: " + secrets.RULE_PEM]


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_rendered_trees_pass(environment):
    # The guard must never stop a legitimate render: every file of both example trees is clean.
    files = gitops.render(build_spec(*load_inventory(environment)))
    assert len(files) > 50
    assert secrets.scan_files(files) == []


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_example_inventories_pass(environment):
    variables, _groups, _hostvars = load_inventory(environment)
    assert secrets.findings(variables) == []


def test_a_secret_below_a_secret_key_is_found_and_hidden_too():
    value = {"hosts": {"ghp_" + SECRET * 3: {"password": SECRET}}}
    clean, found = secrets.redacted(value)
    assert ("hosts.<redacted key>.password", secrets.RULE_KEY) in found
    assert SECRET not in repr(clean) and SECRET not in repr(found)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""secret_scan: what stops a commit to the GitOps repository, and what must not."""

from __future__ import absolute_import, annotations, division, print_function

import os

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import gitops, secret_scan
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

__metaclass__ = type

SECRET_OBJECT = """\
apiVersion: v1
kind: Secret
metadata: {name: db}
type: Opaque
"""


@pytest.mark.parametrize("relpath, text, expected", [
    ("infra/x/production/secret-db.yaml", SECRET_OBJECT, "a Kubernetes Secret"),
    ("infra/x/values-production.yaml", "auth:\n  password: hunter2hunter2\n",
     "auth.password holds a literal value (14 characters)"),
    ("infra/x/values-production.yaml", "config:\n  api_key: abc\n", "config.api_key holds a literal value"),
    ("infra/x/values-production.yaml", "env:\n- name: A\n  clientSecret: s3cr3t\n",
     "env[0].clientSecret holds a literal value"),
    ("infra/x/values-production.yaml", "tls: |\n  -----BEGIN RSA PRIVATE KEY-----\n  MIIB\n",
     "looks like a PEM private key"),
    ("infra/x/values-production.yaml", "url: https://admin:pw@db.example.com/x\n",
     "looks like a URL with a password"),
    ("infra/x/values-production.yaml", "x: ghp_" + "a" * 36 + "\n", "looks like a GitHub token"),
    ("infra/x/values-production.yaml", "x: hvs." + "b" * 24 + "\n", "looks like a Vault token"),
    ("notes.txt", "-----BEGIN OPENSSH PRIVATE KEY-----\n", "looks like a PEM private key"),
    ("infra/x/values-production.yaml", "a: [unclosed\n", "does not parse as YAML"),
])
def test_finds_secret_material(relpath, text, expected):
    findings = secret_scan.scan(relpath, text)
    assert any(expected in finding for finding in findings), findings
    assert all(finding.startswith(relpath) for finding in findings)


@pytest.mark.parametrize("text", [
    "existingSecret: grafana-admin\n",                   # names a Secret, holds none
    "passwordKey: password\n",
    "data:\n- secretKey: password\n  remoteRef: {key: kong/db, property: password}\n",
    "template:\n  data:\n    password: '{{ .password }}'\n",   # ExternalSecret template
    "env: {TOKEN: '${TUNNEL_TOKEN}'}\n",
    "automountServiceAccountToken: false\n",
    "password: ''\n",
    "repoURL: git@git.example.com:acme/platform-gitops.git\n",
    "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: db}\n",
])
def test_leaves_references_alone(text):
    assert secret_scan.scan("infra/x/production/file.yaml", text) == []


def test_values_are_never_echoed():
    findings = secret_scan.scan("v.yaml", "password: correct-horse-battery\n")
    assert findings and "correct-horse" not in " ".join(findings)


def test_secret_inside_a_multi_document_file_is_located():
    findings = secret_scan.scan("projects.yaml", "kind: ConfigMap\napiVersion: v1\n---\n" + SECRET_OBJECT)
    assert findings == ["projects.yaml[1]: a Kubernetes Secret (the GitOps tree holds ExternalSecrets only)"]


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_rendered_trees_pass(environment):
    # The guard must never stop a legitimate render: every file of both example trees is clean.
    files = gitops.render(build_spec(*load_inventory(environment)))
    assert len(files) > 50
    findings = [finding for path, text in sorted(files.items()) for finding in secret_scan.scan(path, text)]
    assert findings == []


def test_the_list_of_generated_files_is_not_yaml_checked():
    assert secret_scan.scan(os.path.join(".plinth-generated-production"), "# list\na.yaml\n") == []

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Find secret material in files about to be committed to the GitOps repository.

The rendered tree never holds a secret (secrets are ExternalSecret references to
Vault), so anything that looks like one is a bug or a hand edit, and must stop the
commit before it reaches a remote.  Findings name the file, where in the document
and what was seen, never the value itself.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core on the controller, where this runs
    yaml = None

__metaclass__ = type

# Keys that hold secret material when their value is a literal string. Compared after
# lowercasing and dropping '-', '_' and '.'. Keys that name where a secret lives do not match:
# "existingSecret", "passwordKey", an ExternalSecret's "secretKey".
SECRET_KEY_SUFFIXES = ("password", "passwd", "passphrase", "token", "apikey", "privatekey",
                       "clientsecret", "secretaccesskey", "credentials")
# Values that only point at a secret: Helm or ExternalSecret templates, shell expansions.
PLACEHOLDER = re.compile(r"^\s*(\{\{.*\}\}|\$\{.*\}|\$\(.*\))\s*$", re.S)
SECRET_PATTERNS = (
    ("a PEM private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")),
    ("a URL with a password", re.compile(r"\b[a-z][a-z0-9+.-]*://[^/?#@\s:]+:[^/?#@\s]+@", re.I)),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a Vault token", re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}")),
)
YAML_SUFFIXES = (".yaml", ".yml")


def is_secret_key(key):
    name = re.sub(r"[-_.]", "", str(key).lower())
    return name.endswith(SECRET_KEY_SUFFIXES)


def _scan_text(text, where):
    return ["%s: looks like %s" % (where, label) for label, pattern in SECRET_PATTERNS if pattern.search(text)]


def _scan_node(node, where, path, findings):
    if isinstance(node, dict):
        if node.get("kind") == "Secret" and "apiVersion" in node and not path:
            findings.append("%s: a Kubernetes Secret (the GitOps tree holds ExternalSecrets only)" % where)
        for key, value in node.items():
            here = "%s.%s" % (path, key) if path else str(key)
            if isinstance(value, str) and value.strip() and is_secret_key(key) \
                    and not PLACEHOLDER.match(value):
                findings.append("%s: %s holds a literal value (%d characters)" % (where, here, len(value)))
            else:
                _scan_node(value, where, here, findings)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _scan_node(value, where, "%s[%d]" % (path, index), findings)


def scan(relpath, text):
    """Every reason to believe ``text`` (the content of ``relpath``) carries a secret."""
    findings = _scan_text(text, relpath)
    if not relpath.endswith(YAML_SUFFIXES):
        return findings
    if yaml is None:
        raise RuntimeError("scanning YAML files for secrets needs PyYAML")
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        # A file we cannot read we cannot vouch for.
        return findings + ["%s: does not parse as YAML, so it cannot be checked for secrets (%s)"
                           % (relpath, str(exc).splitlines()[0])]
    for index, doc in enumerate(docs):
        where = "%s[%d]" % (relpath, index) if len(docs) > 1 else relpath
        _scan_node(doc, where, "", findings)
    return findings

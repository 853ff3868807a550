# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The one secret detector: what counts as secret material, wherever Plinth looks.

Validation runs it over the inventory, the tree writer over every generated file
before it writes any, and ``gitops_commit`` over every file it is about to commit.
A finding names where the secret sits and which rule saw it, never the value.

A value is secret material when:

- it is a literal under a secret-like key (``password``, ``api-key``, ``pwd``,
  ``clientSecret``...), including the env idiom ``{name: DB_PASSWORD, value: ...}``;
- it holds a URL with credentials (``scheme://user:pass@``) anywhere in a longer
  string, or sets a secret-like name inside a string (``?password=...``,
  ``--token=...``, ``DB_PASSWORD=...``, a config snippet's ``secret: ...``);
- it holds a private key: PEM, armored PGP, or either of them base64-encoded;
- it holds a token of a well-known format, whatever the key above it is called.

References to secrets are not secret: ``existingSecret: name``, ``passwordKey: password``,
an ExternalSecret's ``secretKey``, and templates such as ``{{ .password }}`` or ``${TOKEN}``.
"""

from __future__ import absolute_import, annotations, division, print_function

import base64
import binascii
import re

try:
    import yaml
    LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
except ImportError:  # PyYAML comes with ansible-core on the controller, where this runs
    yaml = None

__metaclass__ = type

# Key names are compared after lowercasing and dropping '-', '_', '.' and spaces.
SECRET_KEY_SUFFIXES = ("password", "passwd", "passphrase", "pwd", "secret", "token", "apikey",
                       "privatekey", "clientsecret", "secretaccesskey", "accesskey", "credential",
                       "credentials", "authkey", "signingkey", "encryptionkey", "sessionkey")
# "pass" only as a word of its own: SMTP_PASS, db.pass, but not bypass or compass.
SHORT_PASS = re.compile(r"(^|[-_. ])pass$|[a-z]Pass$", re.I)
# Keys that end like a secret but name one, or say whether to use one.
REFERENCE_KEYS = frozenset(("existingsecret", "usesecret", "createsecret", "automountserviceaccounttoken",
                            "secretkey"))
# Keys whose value names an environment variable or setting, and the key holding its value.
PAIR_NAMES = ("name", "key")
PAIR_VALUE = "value"

# What a key that is itself secret material is shown as.
HIDDEN_KEY = "<redacted key>"
# Values that only point at a secret: Helm or ExternalSecret templates, shell expansions.
PLACEHOLDER = re.compile(r"^\s*(\{\{.*\}\}|\$\{[^}]*\}|\$\([^)]*\))\s*$", re.S)

RULE_KEY = "secret-key: a literal value under a secret-like key"
RULE_ENV = "secret-env: an environment variable named like a secret holds a literal value"
RULE_URL = "url-credentials: a URL carries a password or token"
RULE_ASSIGN = ("secret-assignment: a string sets a secret-like name to a literal "
               "(name=value, --flag=value, ?query=value, name: value)")
RULE_PEM = "private-key: a PEM private key"
RULE_PGP = "private-key: an armored PGP private key"
RULE_B64 = "private-key: a base64-encoded private key"
RULE_SECRET_OBJECT = "secret-object: a Kubernetes Secret (the GitOps tree holds ExternalSecrets only)"
RULE_UNREADABLE = "unreadable: does not parse as YAML, so it cannot be checked for secrets"

URL_USERINFO = re.compile(r"://([^/?#@\s]+)@")
# name=value inside a string: a URL query, a command-line flag, an env line, a config snippet.
ASSIGNMENT = re.compile(r"(?:^|[\s?&;,\"'{(])-{0,2}([A-Za-z][A-Za-z0-9_.-]*)[ \t]*[=:][ \t]*[\"']?([^\s&#;,\"'}?]+)")
PEM_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
PGP_KEY = re.compile(r"-----BEGIN PGP PRIVATE KEY BLOCK-----")
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
TOKENS = (
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*")),
    ("an AWS access key id", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abeprs]-[A-Za-z0-9-]{10,}")),
    ("a Slack webhook", re.compile(r"hooks\.slack\.com/services/T[A-Za-z0-9]+/B[A-Za-z0-9]+/[A-Za-z0-9]+")),
    ("a Vault token", re.compile(r"\bhv[sbr]\.[A-Za-z0-9_-]{20,}")),
    ("a Stripe key", re.compile(r"\b[rs]k_live_[A-Za-z0-9]{20,}")),
    ("a Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("an OpenAI-style key", re.compile(r"\bsk-(proj-)?[A-Za-z0-9_-]{32,}")),
    ("a Cloudflare tunnel token", re.compile(r"\beyJhIjoi[A-Za-z0-9+/=]{40,}")),
    ("an npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("an age secret key", re.compile(r"\bAGE-SECRET-KEY-1[0-9A-Z]{58}\b")),
)
# Cheap gates, so that most strings and files are let go without trying every rule.
# Every token format is a run of at least 20 of these characters:
LONG_RUN = re.compile(r"[A-Za-z0-9+/_.=-]{20,}")
# Every key, env and assignment rule needs a secret-like name right before a ':' or '=' (a key,
# a setting) or at the end of a value (an env entry's name); matched against lowercased text.
KEY_HINT = re.compile(r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|credentials?|"
                      r"(?:api|private|access|auth|signing|encryption|session)[-_. ]?key)"
                      r"[\"']?[ \t]*(?:[:=,}\]]|$)", re.M)
KEY_WORDS = ("pass", "pwd", "secret", "token", "credential", "key")
ANY_TOKEN = re.compile("|".join(pattern.pattern for _label, pattern in TOKENS))
YAML_SUFFIXES = (".yaml", ".yml")


def _key_hint(text):
    lowered = text.lower()
    return any(word in lowered for word in KEY_WORDS) and bool(KEY_HINT.search(lowered))


def _normal(key):
    return re.sub(r"[-_. ]", "", str(key).lower())


def is_secret_key(key):
    """Whether a literal under ``key`` would be secret material."""
    name = _normal(key)
    if name in REFERENCE_KEYS:
        return False
    return name.endswith(SECRET_KEY_SUFFIXES) or bool(SHORT_PASS.search(str(key)))


def is_literal(value):
    """A value that carries content: a non-empty string that is not a template, or a number."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and value.strip() != "" and not PLACEHOLDER.match(value)


def _base64_markers(plain):
    """How ``plain`` reads in base64 at each of the three alignments it can start at."""
    markers = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + plain).decode()
        markers.append(encoded[-(-4 * shift // 3):(shift + len(plain)) * 8 // 6])
    return tuple(markers)


B64_PRIVATE_KEY = _base64_markers(b"PRIVATE KEY")


def _base64_private_key(text):
    if not any(marker in text for marker in B64_PRIVATE_KEY):
        return False
    for run in BASE64_RUN.finditer(text):
        chunk = run.group(0)[:4096]
        chunk = chunk[:len(chunk) - len(chunk) % 4]
        try:
            decoded = base64.b64decode(chunk).decode("latin-1")
        except (binascii.Error, ValueError):
            continue
        if PEM_KEY.search(decoded) or PGP_KEY.search(decoded) or "PRIVATE KEY" in decoded:
            return True
    return False


def text_rules(text, assignments=True):
    """The rules ``text`` breaks on its own, whatever key it sits under.

    ``assignments=False`` leaves out name=value settings: for a whole YAML file, whose
    own ``key: value`` lines the structural walk checks.
    """
    rules = []
    if assignments and _key_hint(text):
        for match in ASSIGNMENT.finditer(text):
            if is_secret_key(match.group(1)) and is_literal(match.group(2)) \
                    and not match.group(2).startswith(("{{", "${", "$(")):
                rules.append(RULE_ASSIGN)
                break
    if "://" not in text and "-----BEGIN" not in text and not LONG_RUN.search(text):
        return rules
    for match in URL_USERINFO.finditer(text) if "@" in text else ():
        _user, colon, password = match.group(1).partition(":")
        if colon and password:
            rules.insert(0, RULE_URL)
            break
    if PEM_KEY.search(text):
        rules.append(RULE_PEM)
    if PGP_KEY.search(text):
        rules.append(RULE_PGP)
    if _base64_private_key(text):
        rules.append(RULE_B64)
    # Token formats are tried on the long runs only: the same matches, a fraction of the text.
    runs = " ".join(run.group(0) for run in LONG_RUN.finditer(text))
    if ANY_TOKEN.search(runs):
        rules.extend("token: %s" % label for label, pattern in TOKENS if pattern.search(runs))
    return rules


def _join(path, key):
    return "%s.%s" % (path, key) if path else str(key)


def _pair_name(node):
    """The secret-like name of an env-style ``{name: X, value: Y}`` entry, or None."""
    if PAIR_VALUE not in node:
        return None
    for key in PAIR_NAMES:
        name = node.get(key)
        if isinstance(name, str) and is_secret_key(name):
            return name
    return None


def findings(value, path=""):
    """``[(path, rule)]`` for every piece of secret material in ``value`` (plain data)."""
    found = []
    _walk(value, path, found)
    return found


def _walk(node, path, found):
    if isinstance(node, dict):
        pair = _pair_name(node)
        for key, value in node.items():
            here = _join(path, key)
            if (is_secret_key(key) or (pair and key == PAIR_VALUE)) and is_literal(value):
                found.append((here, RULE_ENV if key == PAIR_VALUE and pair else RULE_KEY))
                continue
            # A key that is itself secret material is reported under a placeholder, never by name.
            key_rules = text_rules(key) if isinstance(key, str) else []
            found.extend((_join(path, HIDDEN_KEY), rule) for rule in key_rules)
            _walk(value, _join(path, HIDDEN_KEY) if key_rules else here, found)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _walk(value, "%s[%d]" % (path, index), found)
    elif isinstance(node, str):
        found.extend((path, rule) for rule in text_rules(node))


def redacted(value, path=""):
    """``(copy of value with every secret replaced by a placeholder, findings)``.

    Validation checks the redacted copy, so no error it raises can echo a secret.
    """
    found = findings(value, path)
    hidden = set(where for where, _rule in found)
    return _replace(value, path, hidden), found


def _replace(node, path, hidden):
    if path in hidden:
        return "<redacted>"
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            shown = HIDDEN_KEY if isinstance(key, str) and text_rules(key) else key
            out[shown] = _replace(value, _join(path, shown), hidden)
        return out
    if isinstance(node, list):
        return [_replace(value, "%s[%d]" % (path, index), hidden) for index, value in enumerate(node)]
    return node


def scan_file(relpath, text):
    """Every reason to believe ``text`` (the content of ``relpath``) carries a secret.

    Each reason reads ``<file>[<document>] <path>: <rule>``.
    """
    if not relpath.endswith(YAML_SUFFIXES):
        return ["%s: %s" % (relpath, rule) for rule in text_rules(text)]
    whole = text_rules(text, assignments=False)
    if not whole and not _key_hint(text):
        return []  # no secret-like word and no secret shape anywhere: nothing to locate
    if yaml is None:
        raise RuntimeError("scanning YAML files for secrets needs PyYAML")
    try:
        docs = [doc for doc in yaml.load_all(text, Loader=LOADER) if doc is not None]
    except yaml.YAMLError:
        # A file we cannot read we cannot vouch for (the parser's message may quote the text).
        return ["%s: %s" % (relpath, rule) for rule in whole + [RULE_UNREADABLE]]
    found, placed = [], set()
    for index, doc in enumerate(docs):
        where = "%s[%d]" % (relpath, index) if len(docs) > 1 else relpath
        if isinstance(doc, dict) and doc.get("kind") == "Secret" and "apiVersion" in doc:
            found.append("%s: %s" % (where, RULE_SECRET_OBJECT))
        for path, rule in findings(doc):
            found.append("%s %s: %s" % (where, path, rule))
            placed.add(rule)
    # What the documents do not hold (a comment, say) is reported for the whole file.
    found.extend("%s: %s" % (relpath, rule) for rule in whole if rule not in placed)
    return found


def scan_files(files):
    """Every finding in ``files`` (relpath -> text), sorted by path."""
    return [finding for relpath in sorted(files) for finding in scan_file(relpath, files[relpath])]

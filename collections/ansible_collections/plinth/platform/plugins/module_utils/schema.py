# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""A small declarative schema for inventory variables.

Every problem is collected, never raised one at a time, so the user sees the
whole list in one run.  Each message names the variable path, the bad value
and the rule it broke.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy
import ipaddress
import re

__metaclass__ = type

REQUIRED = object()

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^$|^(?=.{1,63}$)[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
SEMVER = re.compile(r"^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
# Prometheus-style durations: 30d, 12h, 1w, 90m, 1h30m
DURATION = re.compile(r"^(([0-9]+)(y|w|d|h|m|s|ms))+$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Kubernetes stores replicas, ports and most counts as int32: a larger number fails at apply time.
INT32_MAX = 2147483647
# Helm keeps release names short enough for the "sh.helm.release.v1.<name>.v<N>" Secret label.
HELM_RELEASE_NAME_MAX = 53
# The longest file name Linux file systems (ext4, xfs, btrfs) accept, in bytes.
FILE_NAME_MAX = 255
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")


class SpecError(Exception):
    """The inventory is invalid; ``errors`` lists every problem found."""

    def __init__(self, errors):
        self.errors = list(errors)
        super(SpecError, self).__init__(
            "invalid inventory (%d problem%s):\n  - %s"
            % (len(self.errors), "" if len(self.errors) == 1 else "s", "\n  - ".join(self.errors))
        )


class Errors:
    """Collects ``path: got value; rule`` messages."""

    def __init__(self):
        self.items = []

    def add(self, path, value, rule):
        self.items.append("%s: got %s; %s" % (path, _show(value), rule))

    def add_rule(self, path, rule):
        """A problem whose value is not worth echoing (an unknown key: only the key is)."""
        self.items.append("%s: %s" % (path, rule))

    def __bool__(self):
        return bool(self.items)

    def raise_if_any(self):
        if self.items:
            raise SpecError(self.items)


def _show(value):
    if value is REQUIRED:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


# --- value checks: return None when fine, else the rule that was broken ------

def dns_label(value):
    if not DNS_LABEL.match(value):
        return "must be a DNS label (lowercase letters, digits and '-', at most 63 characters)"
    return None


def dns_subdomain(value):
    if not DNS_SUBDOMAIN.match(value):
        return "must be a DNS subdomain (lowercase letters, digits, '-' and '.')"
    return None


def label_key(value):
    prefix, _slash, name = value.rpartition("/")
    if prefix and dns_subdomain(prefix):
        return "label key prefix %r must be a DNS subdomain" % prefix
    if not LABEL_NAME.match(name):
        return ("label key name %r must be at most 63 characters of letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit" % name)
    return None


def label_value(value):
    if not LABEL_VALUE.match(value):
        return ("label value must be at most 63 characters of letters, digits, '-', '_' and '.', "
                "starting and ending with a letter or digit")
    return None


def semver(value):
    if not SEMVER.match(value):
        return "must be a version like 1.2.3"
    return None


def duration(value):
    if not DURATION.match(value) or not re.search(r"[1-9]", value):
        return "must be a positive duration like 30d, 12h or 1h30m"
    return None


def quantity(value):
    if not QUANTITY.match(value):
        return "must be a Kubernetes quantity like 500m, 2, 128Mi or 50Gi"
    return None


def cidr(value):
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return "must be a network in CIDR notation with no host bits set (%s)" % exc
    return None


def ip_or_host(value):
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    # 300.1.1.11 passes as a DNS name, but nobody means a host name by it.
    for looks_like, parse, what in ((DOTTED_NUMBERS.match(value), ipaddress.IPv4Address, "IPv4"),
                                    (":" in value, ipaddress.IPv6Address, "IPv6")):
        if looks_like:
            try:
                parse(value)
            except ValueError as exc:
                return "is not a valid %s address (%s)" % (what, exc)
    if dns_subdomain(value.lower()):
        return "must be an IP address or a DNS name"
    return None


def helm_release_name(value):
    if len(value) > HELM_RELEASE_NAME_MAX:
        return ("must be at most %d characters: it is a Helm release name (%d characters)"
                % (HELM_RELEASE_NAME_MAX, len(value)))
    return None


# The host may not start with '-' either: ssh would read ssh://-oProxyCommand=... as an option.
GIT_URL = re.compile(r"^(https?|ssh|git)://([^/@]+@)?[^-/@][^/@]*(/.*)?$|^file://.+$")
# scp-like syntax: [user@]host:path.  A host followed by "::" is a remote helper (ext::sh -c ...).
GIT_SCP = re.compile(r"^([A-Za-z0-9._~+-]+@)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:(?!:)(?!//).+$")


def git_url(value):
    if value.startswith("-"):
        return "must not start with '-': git would read it as an option"
    if CONTROL_OR_SPACE.search(value):
        return "must not contain whitespace or control characters"
    if GIT_URL.match(value) or GIT_SCP.match(value) or value.startswith("/"):
        return None
    return ("must be a git URL: https://, http://, ssh://, git:// or file://, scp-like user@host:path, "
            "or an absolute local path")


GIT_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def git_branch(value):
    """The rules of ``git check-ref-format --branch``."""
    if (not value or value.startswith(("-", "/", ".")) or value.endswith(("/", ".", ".lock")) or value == "@"
            or ".." in value or "//" in value or "@{" in value or "/." in value or ".lock/" in value
            or GIT_REF_FORBIDDEN.search(value)):
        return ("must be a git branch name: not starting with '-', '/' or '.', no '..', '//' or '@{', "
                "no spaces, control characters or any of ~^:?*[\\, not ending in '.lock', '/' or '.'")
    return None


def clone_path(value):
    """A folder of the GitOps clone: relative, and not into .git or onto the render's own lists."""
    if CONTROL.search(value):
        return "must not contain control characters"
    if value.startswith("/"):
        return "must be a relative path inside the GitOps clone, not an absolute path"
    segments = [part for part in value.split("/") if part not in ("", ".")]
    if ".." in segments:
        return "must be a relative path inside the GitOps clone: no '..' segments"
    if any(part.startswith(".plinth-") for part in segments):
        return "must not have a segment starting with '.plinth-': those names are the render's lists of generated files"
    if any(part == ".git" for part in segments):
        return "must not enter .git: the tree belongs in the clone's work tree"
    return None


def chart_repo(value):
    if re.match(r"^(https?|oci)://[^\s]+$", value) or value.startswith(("/", "./", "../", "file://")):
        return None
    return "must be an https://, http:// or oci:// chart repository URL, or a local chart path"


def chart_mirror(value):
    if re.match(r"^(https?|oci)://[^\s/]+(/[^\s]*)?$", value):
        return None
    return "must be an https://, http:// or oci:// URL that serves every chart by name and version"


# --- fields ------------------------------------------------------------------

class Field:
    """One inventory value: its type, default and rules.

    ``kind`` is one of str, int, bool, float, dict (fixed ``fields``), map
    (free keys checked by ``keys``, values by ``values``), list (``items``) or any.
    """

    def __init__(self, kind, default=REQUIRED, fields=None, items=None, keys=None, values=None,
                 choices=None, minimum=None, maximum=None, checks=(), nullable=False, doc=""):
        self.kind = kind
        self.default = default
        self.fields = fields or {}
        self.items = items
        self.keys = keys
        self.values = values
        self.choices = choices
        self.minimum = minimum
        self.maximum = maximum
        self.checks = tuple(checks)
        self.nullable = nullable
        self.doc = doc

    def defaults(self):
        """The default value, with nested dict defaults filled in."""
        if self.default is not REQUIRED and self.default is not None:
            if self.kind == "dict" and self.fields and isinstance(self.default, dict):
                return normalize(self.default, self, "<default>", Errors())
            return copy.deepcopy(self.default)
        if self.kind == "dict" and self.default is REQUIRED and _all_defaulted(self):
            return dict((k, f.defaults()) for k, f in self.fields.items())
        return copy.deepcopy(self.default)


def Str(default=REQUIRED, **kw):
    return Field("str", default, **kw)


def Int(default=REQUIRED, **kw):
    """An integer, at most INT32_MAX unless a smaller ``maximum`` is given."""
    if kw.get("maximum") is None or kw["maximum"] > INT32_MAX:
        kw["maximum"] = INT32_MAX
    return Field("int", default, **kw)


def Bool(default=REQUIRED, **kw):
    return Field("bool", default, **kw)


def Dict(fields, default=REQUIRED, **kw):
    return Field("dict", default, fields=fields, **kw)


def Map(keys=None, values=None, default=REQUIRED, **kw):
    return Field("map", default, keys=keys, values=values or Field("any"), **kw)


def List(items, default=REQUIRED, **kw):
    return Field("list", default, items=items, **kw)


def Any(default=REQUIRED, **kw):
    return Field("any", default, **kw)


def Resources(cpu_request, memory_request, cpu_limit, memory_limit, **kw):
    """Container requests and limits, each a Kubernetes quantity with its default."""
    def quantity_field(default):
        return Str(default, checks=[quantity])
    return Dict({
        "requests": Dict({"cpu": quantity_field(cpu_request), "memory": quantity_field(memory_request)}),
        "limits": Dict({"cpu": quantity_field(cpu_limit), "memory": quantity_field(memory_limit)}),
    }, **kw)


_TYPE_NAMES = {"str": "a string", "int": "an integer", "bool": "true or false", "float": "a number",
               "dict": "a mapping", "map": "a mapping", "list": "a list"}


def _type_ok(kind, value):
    if kind == "any":
        return True
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind in ("dict", "map"):
        return isinstance(value, dict)
    if kind == "list":
        return isinstance(value, list)
    raise ValueError("unknown field kind %r" % kind)


def normalize(value, field, path, errors):
    """Check ``value`` against ``field``; return it with defaults filled in.

    Problems go to ``errors``; the returned value is then best-effort so that
    later cross-checks can still run and report their own findings.
    """
    if value is None and field.nullable:
        return None
    if not _type_ok(field.kind, value):
        rule = "must be %s" % _TYPE_NAMES[field.kind]
        if value is None:
            rule += "; an empty YAML value is null: give it a value or leave the key out"
        errors.add(path, value, rule)
        # Defaults stand in for the bad value, so later cross-checks see the shape they expect.
        return field.defaults() if _all_defaulted(field) else None
    if field.kind == "dict":
        return _normalize_dict(value, field, path, errors)
    if field.kind == "map":
        out = {}
        for key in sorted(value, key=str):
            sub = _join(path, key)
            if not isinstance(key, str):
                errors.add(sub, key, "keys must be strings")
                continue
            if field.keys is not None:
                for check in field.keys.checks:
                    rule = check(key)
                    if rule:
                        errors.add(sub, key, rule)
            out[key] = normalize(value[key], field.values, sub, errors)
        return out
    if field.kind == "list":
        return [normalize(item, field.items, "%s[%d]" % (path, i), errors) for i, item in enumerate(value)]
    if field.choices is not None and value not in field.choices:
        errors.add(path, value, "must be one of %s" % ", ".join(repr(c) for c in field.choices))
    if field.minimum is not None and value < field.minimum:
        errors.add(path, value, "must be at least %r" % field.minimum)
    if field.maximum is not None and value > field.maximum:
        errors.add(path, value, "must be at most %r" % field.maximum)
    for check in field.checks:
        rule = check(value)
        if rule:
            errors.add(path, value, rule)
    return value


def _normalize_dict(value, field, path, errors):
    out = {}
    for key in sorted(value, key=str):
        if key not in field.fields:
            known = ", ".join(sorted(field.fields)) or "none"
            errors.add_rule(_join(path, key), "unknown key (known keys: %s)" % known)
    for key, sub in field.fields.items():
        subpath = _join(path, key)
        if key in value:
            out[key] = normalize(value[key], sub, subpath, errors)
        elif sub.default is REQUIRED and not _all_defaulted(sub):
            errors.add(subpath, REQUIRED, "is required")
            out[key] = None
        else:
            out[key] = sub.defaults()
    return out


def _all_defaulted(field):
    """True when ``field`` can be left out: it has a default, or is a dict whose fields all do."""
    if field.default is not REQUIRED:
        return True
    return field.kind == "dict" and all(_all_defaulted(f) for f in field.fields.values())


def _join(path, key):
    return "%s.%s" % (path, key) if path else str(key)

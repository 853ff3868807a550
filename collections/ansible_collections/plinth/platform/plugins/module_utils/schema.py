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
    if dns_subdomain(value.lower()):
        return "must be an IP address or a DNS name"
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
        errors.add(path, value, "must be %s" % _TYPE_NAMES[field.kind])
        return field.defaults() if field.default is not REQUIRED else None
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
            errors.add(_join(path, key), value[key], "unknown key (known keys: %s)" % known)
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

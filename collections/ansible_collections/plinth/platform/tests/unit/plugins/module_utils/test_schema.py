# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The schema engine: types, defaults, unknown keys, value checks and message format."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import schema as s

__metaclass__ = type


def check(field, value, path="x"):
    """(normalized value, error messages) of ``value`` against ``field``."""
    errors = s.Errors()
    out = s.normalize(value, field, path, errors)
    return out, errors.items


# --- value checks ---------------------------------------------------------------

VALID = [
    (s.dns_label, "store-api"), (s.dns_label, "a"), (s.dns_label, "a" * 63), (s.dns_label, "0abc9"),
    (s.dns_subdomain, "store.example.com"), (s.dns_subdomain, "vault"),
    (s.label_key, "node.role"), (s.label_key, "node-role.kubernetes.io/control-plane"),
    (s.label_key, "example.com/Role_1"),
    (s.label_value, ""), (s.label_value, "true"), (s.label_value, "Worker_1.a-b"),
    (s.semver, "1.36.3"), (s.semver, "v1.20.6"), (s.semver, "1.5.0-rc.1"), (s.semver, "0.1.0+build.7"),
    (s.duration, "30d"), (s.duration, "1h30m"), (s.duration, "500ms"), (s.duration, "2w"),
    (s.quantity, "500m"), (s.quantity, "2"), (s.quantity, "128Mi"), (s.quantity, "50Gi"),
    (s.quantity, "1.5"), (s.quantity, "1e3"), (s.quantity, "10G"),
    (s.cidr, "10.244.0.0/16"), (s.cidr, "fd00::/64"), (s.cidr, "203.0.113.7/32"),
    (s.ip_or_host, "192.0.2.10"), (s.ip_or_host, "2001:db8::1"), (s.ip_or_host, "API.Example.com"),
    (s.chart_repo, "https://charts.example.com/acme"), (s.chart_repo, "oci://registry.example.com/charts"),
    (s.chart_repo, "http://10.0.0.1:8080"), (s.chart_repo, "./charts/app"), (s.chart_repo, "/srv/charts/app"),
    (s.chart_repo, "file:///srv/charts"),
]

INVALID = [
    (s.dns_label, "Store", "must be a DNS label"),
    (s.dns_label, "store_api", "must be a DNS label"),
    (s.dns_label, "-store", "must be a DNS label"),
    (s.dns_label, "store-", "must be a DNS label"),
    (s.dns_label, "a" * 64, "at most 63 characters"),
    (s.dns_label, "", "must be a DNS label"),
    (s.dns_subdomain, "store..example.com", "must be a DNS subdomain"),
    (s.dns_subdomain, "Store.example.com", "must be a DNS subdomain"),
    (s.label_key, "node role", "label key name 'node role'"),
    (s.label_key, "Example.COM/role", "label key prefix 'Example.COM' must be a DNS subdomain"),
    (s.label_key, "example.com/", "label key name ''"),
    (s.label_key, "a" * 64, "must be at most 63 characters"),
    (s.label_value, "worker node", "label value must be at most 63 characters"),
    (s.label_value, "-true", "starting and ending with a letter or digit"),
    (s.label_value, "a" * 64, "label value must be at most 63 characters"),
    (s.semver, "1.36", "must be a version like 1.2.3"),
    (s.semver, "latest", "must be a version like 1.2.3"),
    (s.semver, "01.2.3", "must be a version like 1.2.3"),
    (s.duration, "30days", "must be a positive duration"),
    (s.duration, "0d", "must be a positive duration"),
    (s.duration, "30", "must be a positive duration"),
    (s.duration, "", "must be a positive duration"),
    (s.quantity, "256MB", "must be a Kubernetes quantity"),
    (s.quantity, "50 GB", "must be a Kubernetes quantity"),
    (s.quantity, "lots", "must be a Kubernetes quantity"),
    (s.cidr, "10.244.0.0/33", "must be a network in CIDR notation"),
    (s.cidr, "10.244.1.0/16", "has host bits set"),
    (s.ip_or_host, "not a host!", "must be an IP address or a DNS name"),
    (s.chart_repo, "charts.example.com/acme", "must be an https://, http:// or oci:// chart repository URL"),
    (s.chart_repo, "ftp://charts.example.com", "must be an https://, http:// or oci://"),
]


@pytest.mark.parametrize("checker, value", VALID, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_value_check_accepts(checker, value):
    assert checker(value) is None


@pytest.mark.parametrize("checker, value, rule", INVALID,
                         ids=lambda v: getattr(v, "__name__", repr(v)))
def test_value_check_rejects(checker, value, rule):
    assert rule in (checker(value) or "")


def test_bare_address_is_a_host_network():
    """ipaddress reads a bare address as a /32 (or /128) network."""
    assert s.cidr("10.244.0.0") is None


# --- types ----------------------------------------------------------------------------

TYPES = [
    (s.Str(), 3, "x: got 3; must be a string"),
    (s.Str(), None, "x: got None; must be a string; an empty YAML value is null: give it a value or leave the key out"),
    (s.Int(), "3", "x: got '3'; must be an integer"),
    (s.Int(), True, "x: got True; must be an integer"),
    (s.Int(), 3.0, "x: got 3.0; must be an integer"),
    (s.Bool(), "yes", "x: got 'yes'; must be true or false"),
    (s.Bool(), 1, "x: got 1; must be true or false"),
    (s.Field("float"), "1.5", "x: got '1.5'; must be a number"),
    (s.Field("float"), False, "x: got False; must be a number"),
    (s.Dict({}), [], "x: got []; must be a mapping"),
    (s.Map(), "a=b", "x: got 'a=b'; must be a mapping"),
    (s.List(s.Str()), "a", "x: got 'a'; must be a list"),
    (s.List(s.Str()), {"a": 1}, "x: got {'a': 1}; must be a list"),
]


@pytest.mark.parametrize("field, value, message", TYPES, ids=[t[2] for t in TYPES])
def test_wrong_type_is_reported(field, value, message):
    assert check(field, value)[1] == [message]


@pytest.mark.parametrize("field, value", [
    (s.Str(), "a"), (s.Int(), 0), (s.Int(), -1), (s.Bool(), False), (s.Field("float"), 1),
    (s.Field("float"), 1.5), (s.Dict({}), {}), (s.Map(), {}), (s.List(s.Int()), []), (s.Any(), object),
])
def test_right_type_is_accepted(field, value):
    assert check(field, value) == (value, [])


def test_wrong_type_falls_back_to_the_default_so_cross_checks_still_run():
    assert check(s.Int(3), "3") == (3, ["x: got '3'; must be an integer"])
    assert check(s.Int(), "3")[0] is None


def test_nullable_accepts_none_only_when_declared():
    assert check(s.Str(None, nullable=True), None) == (None, [])
    assert check(s.Str("a"), None)[1] == ["x: got None; must be a string; an empty YAML value is null: give it a value or leave the key out"]


def test_unknown_field_kind_is_a_programming_error():
    with pytest.raises(ValueError):
        check(s.Field("decimal"), 1)


# --- rules --------------------------------------------------------------------------

RULES = [
    (s.Int(minimum=1), 0, ["x: got 0; must be at least 1"]),
    (s.Int(maximum=65535), 70000, ["x: got 70000; must be at most 65535"]),
    (s.Int(minimum=1, maximum=9), 5, []),
    (s.Str(choices=("a", "b")), "c", ["x: got 'c'; must be one of 'a', 'b'"]),
    (s.Str(checks=[s.dns_label, s.semver]), "Bad",
     ["x: got 'Bad'; must be a DNS label (lowercase letters, digits and '-', at most 63 characters)",
      "x: got 'Bad'; must be a version like 1.2.3"]),
]


@pytest.mark.parametrize("field, value, messages", RULES)
def test_rules(field, value, messages):
    assert check(field, value)[1] == messages


# --- dicts: unknown keys, required keys, nested defaults -----------------------------

POOL = s.Dict({
    "group": s.Str(),
    "labels": s.Map(keys=s.Field("str", checks=[s.label_key]), values=s.Str(checks=[s.label_value]),
                    default={}),
    "taints": s.List(s.Dict({"key": s.Str(), "effect": s.Str("NoSchedule")}), default=[]),
})

NESTED = s.Dict({
    "name": s.Str(),
    "resources": s.Dict({
        "requests": s.Dict({"cpu": s.Str("100m"), "memory": s.Str("128Mi")}),
        "limits": s.Dict({"cpu": s.Str("1"), "memory": s.Str("512Mi")}),
    }),
    "scaling": s.Dict({"min": s.Int(), "max": s.Int()}, default=None, nullable=True),
})


def test_unknown_key_names_the_path_and_the_known_keys_never_the_value():
    _result, errors = check(POOL, {"group": "workers", "grup": "workers"}, "plinth_node_pools.worker")
    assert errors == ["plinth_node_pools.worker.grup: unknown key (known keys: group, labels, taints)"]


def test_unknown_keys_at_every_depth():
    _result, errors = check(NESTED, {"name": "a", "resources": {"request": {}, "limits": {"cpus": "1"}}}, "")
    assert errors == [
        "resources.request: unknown key (known keys: limits, requests)",
        "resources.limits.cpus: unknown key (known keys: cpu, memory)",
    ]


def test_unknown_key_of_a_dict_without_fields():
    assert check(s.Dict({}), {"a": 1})[1] == ["x.a: unknown key (known keys: none)"]


def test_missing_required_key():
    out, errors = check(POOL, {}, "plinth_node_pools.worker")
    assert errors == ["plinth_node_pools.worker.group: got nothing; is required"]
    assert out == {"group": None, "labels": {}, "taints": []}


def test_nested_defaults_fill_a_dict_left_out_entirely():
    out, errors = check(NESTED, {"name": "a"})
    assert errors == []
    assert out == {"name": "a", "scaling": None, "resources": {
        "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}}


def test_nested_defaults_fill_the_rest_of_a_partial_dict():
    out, errors = check(NESTED, {"name": "a", "resources": {"limits": {"memory": "1Gi"}}})
    assert errors == []
    assert out["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "1Gi"}}


def test_a_dict_with_a_required_field_cannot_be_left_out():
    field = s.Dict({"outer": s.Dict({"a": s.Str("x"), "b": s.Str()})})
    assert check(field, {})[1] == ["x.outer: got nothing; is required"]


def test_optional_dict_left_out_is_its_default_and_given_is_checked():
    assert check(NESTED, {"name": "a"})[0]["scaling"] is None
    out, errors = check(NESTED, {"name": "a", "scaling": {"min": 1}})
    assert errors == ["x.scaling.max: got nothing; is required"]


def test_dict_default_is_normalized_and_copied():
    field = s.Dict({"a": s.Dict({"b": s.Int(1), "c": s.Int(2)}, default={"b": 5})})
    first = check(field, {})[0]
    assert first == {"a": {"b": 5, "c": 2}}
    first["a"]["b"] = 99
    assert check(field, {})[0] == {"a": {"b": 5, "c": 2}}


def test_list_and_map_defaults_are_fresh_copies():
    field = s.Dict({"l": s.List(s.Str(), default=[]), "m": s.Map(default={})})
    first = check(field, {})[0]
    first["l"].append("x")
    first["m"]["k"] = "v"
    assert check(field, {})[0] == {"l": [], "m": {}}


def test_input_is_not_modified():
    value = {"name": "a", "resources": {"limits": {"memory": "1Gi"}}}
    check(NESTED, value)
    assert value == {"name": "a", "resources": {"limits": {"memory": "1Gi"}}}


# --- lists and maps ---------------------------------------------------------------------

def test_list_items_are_checked_with_their_index():
    field = s.List(s.Dict({"key": s.Str(checks=[s.label_key]), "effect": s.Str(choices=s.TAINT_EFFECTS)}))
    out, errors = check(field, [{"key": "a", "effect": "NoSchedule"}, {"key": "b c", "effect": "Never"}],
                        "plinth_node_pools.gateway.taints")
    assert errors == [
        "plinth_node_pools.gateway.taints[1].key: got 'b c'; label key name 'b c' must be at most 63 "
        "characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        "plinth_node_pools.gateway.taints[1].effect: got 'Never'; must be one of 'NoSchedule', "
        "'PreferNoSchedule', 'NoExecute'",
    ]
    assert len(out) == 2


def test_map_keys_and_values_are_checked():
    out, errors = check(POOL, {"group": "g", "labels": {"node.role": "worker node", "bad key": "x", 7: "y"}},
                        "p")
    assert errors == [
        "p.labels.7: got 7; keys must be strings",
        "p.labels.bad key: got 'bad key'; label key name 'bad key' must be at most 63 characters of "
        "letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        "p.labels.node.role: got 'worker node'; label value must be at most 63 characters of letters, "
        "digits, '-', '_' and '.', starting and ending with a letter or digit",
    ]
    assert sorted(out["labels"]) == ["bad key", "node.role"]


def test_map_without_key_rules_takes_any_string_key():
    assert check(s.Map(), {"Any Key!": [1, {"x": None}]}) == ({"Any Key!": [1, {"x": None}]}, [])


# --- every error at once, and the message format ------------------------------------------

def test_all_errors_are_collected_in_one_pass():
    field = s.Dict({
        "environment": s.Str(checks=[s.dns_label]),
        "port": s.Int(6443, minimum=1, maximum=65535),
        "pools": s.Map(values=POOL),
        "version": s.Str(checks=[s.semver]),
    })
    _result, errors = check(field, {"environment": "Prod", "port": 0, "pools": {"w": {"grup": "x"}}, "extra": 1}, "")
    assert errors == [
        "extra: unknown key (known keys: environment, pools, port, version)",
        "environment: got 'Prod'; must be a DNS label (lowercase letters, digits and '-', at most 63 characters)",
        "port: got 0; must be at least 1",
        "pools.w.grup: unknown key (known keys: group, labels, taints)",
        "pools.w.group: got nothing; is required",
        "version: got nothing; is required",
    ]


def test_spec_error_lists_every_problem():
    exc = s.SpecError(["a: got 1; must be x", "b: got 2; must be y"])
    assert exc.errors == ["a: got 1; must be x", "b: got 2; must be y"]
    assert str(exc) == "invalid inventory (2 problems):\n  - a: got 1; must be x\n  - b: got 2; must be y"
    assert str(s.SpecError(["a: got 1; r"])) == "invalid inventory (1 problem):\n  - a: got 1; r"


def test_errors_raise_only_when_there_are_some():
    errors = s.Errors()
    assert not errors
    errors.raise_if_any()
    errors.add("plinth_components.kong.replicas", 4, "4 replicas need 4 hosts")
    assert errors
    with pytest.raises(s.SpecError) as caught:
        errors.raise_if_any()
    assert caught.value.errors == ["plinth_components.kong.replicas: got 4; 4 replicas need 4 hosts"]


@pytest.mark.parametrize("value, shown", [
    ("a", "'a'"),
    (4, "4"),
    (None, "None"),
    (True, "True"),
    (["a"], "['a']"),
    (s.REQUIRED, "nothing"),
    ("x" * 200, "'" + "x" * 116 + "..."),
])
def test_message_format_is_path_got_value_rule(value, shown):
    errors = s.Errors()
    errors.add("a.b[0]", value, "the rule")
    assert errors.items == ["a.b[0]: got %s; the rule" % shown]
    assert len(shown) <= 120

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The platform spec of the example inventories: defaults filled, hosts resolved, pools.

The bad-input corpus (tests/invalid/ at the repository root) covers rejections
case by case; this file covers what a valid inventory turns into, and the edges
where a check must NOT fire.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy
import json

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import spec as spec_module
from ansible_collections.plinth.platform.plugins.module_utils.components import registry
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec
from ansible_collections.plinth.platform.tests.unit.conftest import digest_in_fresh_process, load_inventory, sha256_of

__metaclass__ = type

EXPECTED = {
    "production": {
        "cluster_name": "prod",
        "endpoint": {"host": "192.0.2.10", "port": 6443},
        "control_plane": ["cp-1", "cp-2", "cp-3"],
        "pools": {
            "gateway": ("kong_nodes", ["gw-1", "gw-2", "gw-3"]),
            "storage": ("ceph_nodes", ["ceph-1", "ceph-2", "ceph-3"]),
            "worker": ("workers", ["worker-1", "worker-2", "worker-3"]),
        },
        "addresses": {"cp-1": "192.0.2.11", "gw-3": "192.0.2.23", "ceph-2": "192.0.2.32",
                      "worker-1": "192.0.2.41"},
        "host_count": 12,
        "apps": {"store-api": "store", "payment-service": "payments"},
        "revision": "main",
    },
    "staging": {
        "cluster_name": "staging",
        "endpoint": {"host": "198.51.100.11", "port": 6443},
        "control_plane": ["stg-cp-1"],
        "pools": {
            "gateway": ("kong_nodes", ["stg-gw-1", "stg-gw-2"]),
            "storage": ("ceph_nodes", ["stg-ceph-1", "stg-ceph-2", "stg-ceph-3"]),
            "worker": ("workers", ["stg-worker-1", "stg-worker-2", "stg-worker-3"]),
        },
        "addresses": {"stg-cp-1": "198.51.100.11", "stg-gw-2": "198.51.100.22",
                      "stg-worker-3": "198.51.100.43"},
        "host_count": 9,
        "apps": {"store-api": "store", "payment-service": "payments"},
        "revision": "staging",
    },
}

POOL_PLACEMENT = [
    ("gateway", {"node.kong.gateway": "true"}, [{"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}]),
    ("storage", {"node.ceph.storage": "true"}, [{"key": "node.ceph.storage", "value": "true", "effect": "NoSchedule"}]),
    ("worker", {"node.role": "worker"}, []),
]


@pytest.fixture
def spec(example_env):
    return build_spec(*load_inventory(example_env))


def test_top_level_values(example_env, spec):
    want = EXPECTED[example_env]
    assert spec["environment"] == example_env
    assert spec["cluster_name"] == want["cluster_name"]
    assert spec["kubernetes_version"] == "1.36.3"
    assert spec["control_plane_endpoint"] == want["endpoint"]
    assert (spec["pod_cidr"], spec["service_cidr"]) == ("10.244.0.0/16", "10.96.0.0/12")


def test_gitops_defaults_are_filled(example_env, spec):
    assert spec["gitops"] == {
        "repo_url": "git@git.example.com:acme/platform-gitops.git",
        "revision": EXPECTED[example_env]["revision"],
        "path": "",
        "checkout_dir": None,
        "push": False,
    }


def test_control_plane_hosts_are_resolved(example_env, spec):
    assert spec["control_plane"] == {"group": "control_plane", "hosts": EXPECTED[example_env]["control_plane"]}


def test_groups_name_what_the_playbooks_target(spec):
    assert spec["groups"] == {"cluster": "k8s_cluster", "control_plane": "control_plane", "storage": "ceph_nodes"}


def test_paths_sit_beside_the_playbooks(example_env):
    spec = build_spec(*load_inventory(example_env), playbook_dir="/srv/plinth/playbooks")
    assert spec["paths"] == {
        "build_dir": "/srv/plinth/playbooks/../build",
        "kubeconfig": "/srv/plinth/playbooks/../build/%s/admin.conf" % example_env,
        "etcd_backups": "/srv/plinth/playbooks/../build/%s/etcd-backups" % example_env,
        "gitops_checkout": "/srv/plinth/playbooks/../build/gitops",
    }


def test_a_checkout_dir_moves_the_gitops_checkout_only(production):
    variables, groups, hostvars = production
    variables["plinth_gitops"]["checkout_dir"] = "/var/lib/plinth/gitops"
    paths = build_spec(variables, groups, hostvars, playbook_dir="/srv/plinth/playbooks")["paths"]
    assert paths["gitops_checkout"] == "/var/lib/plinth/gitops"
    assert paths["kubeconfig"] == "/srv/plinth/playbooks/../build/production/admin.conf"


def test_the_storage_group_follows_the_pool_rook_ceph_uses(production):
    variables, groups, hostvars = production
    variables["plinth_node_pools"]["storage"]["group"] = "disk_nodes"
    groups["disk_nodes"] = groups.pop("ceph_nodes")
    assert build_spec(variables, groups, hostvars)["groups"]["storage"] == "disk_nodes"


def test_pool_hosts_are_resolved_from_their_groups(example_env, spec):
    pools = dict((name, (pool["group"], pool["hosts"])) for name, pool in spec["node_pools"].items())
    assert pools == EXPECTED[example_env]["pools"]


@pytest.mark.parametrize("name, labels, taints", POOL_PLACEMENT)
def test_pools_carry_their_labels_and_taints(spec, name, labels, taints):
    assert spec["node_pools"][name]["labels"] == labels
    assert spec["node_pools"][name]["taints"] == taints


def test_host_addresses_come_from_ansible_host(example_env, spec):
    want = EXPECTED[example_env]
    assert len(spec["hosts"]) == want["host_count"]
    for host, address in want["addresses"].items():
        assert spec["hosts"][host] == {"address": address}


def test_every_component_is_present_with_common_keys_filled(spec):
    assert sorted(spec["components"]) == sorted(c.key for c in registry())
    for component in registry():
        settings = spec["components"][component.key]
        assert isinstance(settings["enabled"], bool), component.key
        assert settings["namespace"], component.key
        assert set(component.options) <= set(settings), component.key
        for release in component.releases:
            if release.chart is not None:
                assert sorted(settings[release.chart_option]) == ["name", "repo", "version"], component.key


def test_components_left_out_of_the_inventory_take_their_declared_defaults(example_env, spec):
    variables, _groups, _hostvars = load_inventory(example_env)
    for component in registry():
        if component.key in variables["plinth_components"]:
            continue
        settings = spec["components"][component.key]
        assert settings["enabled"] == component.enabled, component.key
        assert settings["pool"] == component.pool, component.key
        assert settings["namespace"] == component.namespace, component.key
        for release in component.releases:
            if release.chart is not None:
                assert settings[release.chart_option] == release.chart, component.key


def _kept(given, found):
    """Whether ``found`` holds every value ``given`` sets: the same scalars, lists of the same length item by
    item, and mappings (such as the entries of a list of stores) with every given key, defaults filled beside."""
    if isinstance(given, dict):
        return isinstance(found, dict) and all(k in found and _kept(v, found[k]) for k, v in given.items())
    if isinstance(given, list):
        return isinstance(found, list) and len(given) == len(found) and all(map(_kept, given, found))
    return found == given


def test_inventory_settings_win_over_defaults(example_env, spec):
    variables, _groups, _hostvars = load_inventory(example_env)
    for key, given in variables["plinth_components"].items():
        for option, value in given.items():
            if not isinstance(value, dict):
                found = spec["components"][key][option]
                assert _kept(value, found), "%s.%s: %r became %r" % (key, option, value, found)


def test_apps_get_their_defaults(example_env, spec):
    apps = dict((app["name"], app) for app in spec["apps"])
    assert dict((name, app["namespace"]) for name, app in apps.items()) == EXPECTED[example_env]["apps"]
    for app in spec["apps"]:
        assert app["pool"] == "worker"
        assert app["image"] is None
        assert app["values"] == {}
        assert sorted(app["resources"]) == ["limits", "requests"]
        assert sorted(app["chart"]) == ["name", "repo", "version"]
    assert apps["payment-service"]["ingress"] is None


# --- edits of the production inventory that stay valid ------------------------------------

def _edit(path, value):
    def apply(variables, groups, hostvars):
        node = variables
        keys = path.split("/")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if value is _DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return apply


_DELETE = object()


def _group(name, members, **hvars):
    def apply(variables, groups, hostvars):
        groups[name] = list(members)
        for host, address in hvars.items():
            hostvars.setdefault(host.replace("_", "-"), {})["ansible_host"] = address
    return apply


def _join_cluster(host):
    def apply(variables, groups, hostvars):
        groups["k8s_cluster"] = sorted(set(groups["k8s_cluster"]) | {host})
    return apply


VALID_EDITS = [
    # (id, edits, check on the spec)
    ("app-namespace-defaults-to-name", [_edit("plinth_apps/0/namespace", _DELETE)],
     lambda sp: sp["apps"][0]["namespace"] == "store-api"),
    ("app-without-autoscaling", [_edit("plinth_apps/0/autoscaling", _DELETE)],
     lambda sp: sp["apps"][0]["autoscaling"] is None),
    ("app-resources-default", [_edit("plinth_apps/0/resources", _DELETE)],
     lambda sp: sp["apps"][0]["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                               "limits": {"cpu": "1", "memory": "512Mi"}}),
    ("app-partial-resources", [_edit("plinth_apps/0/resources", {"limits": {"memory": "2Gi"}})],
     lambda sp: sp["apps"][0]["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}),
    ("no-apps", [_edit("plinth_apps", _DELETE)], lambda sp: sp["apps"] == []),
    ("partial-chart-override", [_edit("plinth_components/kong/chart", {"version": "3.4.1"})],
     lambda sp: sp["components"]["kong"]["chart"]["version"] == "3.4.1"
     and sp["components"]["kong"]["chart"]["repo"].startswith("https://")),
    ("disabled-component-skips-its-checks",
     [_edit("plinth_components/monitoring", {"enabled": False, "prometheus_replicas": 9})],
     lambda sp: sp["components"]["monitoring"]["enabled"] is False),
    ("host-without-ansible-host-uses-its-name",
     [_group("workers", ["worker-1", "worker-2", "worker-9"]), _join_cluster("worker-9")],
     lambda sp: sp["hosts"]["worker-9"] == {"address": "worker-9"}),
    ("hosts-outside-pools-are-ignored", [_group("bastion", ["jump-1"], jump_1="192.0.2.99")],
     lambda sp: "jump-1" not in sp["hosts"]),
    ("host-in-two-pools-with-equal-taints",
     [_edit("plinth_node_pools/edge", {"group": "edge_nodes", "labels": {"node.edge": "true"},
                                       "taints": [{"key": "node.kong.gateway", "value": "true",
                                                   "effect": "NoSchedule"}]}),
      _group("edge_nodes", ["gw-1"])],
     lambda sp: sp["node_pools"]["edge"]["hosts"] == ["gw-1"]),
    ("control-plane-host-in-a-pool-with-the-control-plane-taint",
     [_edit("plinth_node_pools/control", {"group": "control_plane", "labels": {"node.role": "control"},
                                          "taints": [{"key": "node-role.kubernetes.io/control-plane",
                                                      "effect": "NoSchedule"}]})],
     lambda sp: sp["node_pools"]["control"]["hosts"] == ["cp-1", "cp-2", "cp-3"]),
    ("app-in-namespace-of-disabled-component",
     [_edit("plinth_components/cloudflared", {"enabled": False}), _edit("plinth_apps/0/namespace", "cloudflared")],
     lambda sp: sp["apps"][0]["namespace"] == "cloudflared"),
    ("render-dir-is-a-run-variable", [_edit("plinth_render_dir", "/tmp/out")],
     lambda sp: "render_dir" not in json.dumps(sp)),
    ("secret-names-and-keys-are-not-secrets",
     [_edit("plinth_apps/0/values", {"auth": {"password": "", "token": None, "secret": True,
                                              "existing_secret": {"name": "db", "key": "password"}},
                                     "keys": ["password", "api-key"]})],
     lambda sp: sp["apps"][0]["values"]["keys"] == ["password", "api-key"]),
    ("urls-without-passwords-are-fine",
     [_edit("plinth_gitops/repo_url", "ssh://git@git.example.com:2222/acme/gitops.git"),
      _edit("plinth_apps/0/chart/repo", "https://charts.example.com:8443/acme?x=a@b")],
     lambda sp: sp["gitops"]["repo_url"].startswith("ssh://git@")),
    ("adjacent-networks", [_edit("plinth_pod_cidr", "172.16.0.0/16"), _edit("plinth_service_cidr", "172.17.0.0/16")],
     lambda sp: (sp["pod_cidr"], sp["service_cidr"]) == ("172.16.0.0/16", "172.17.0.0/16")),
]


@pytest.mark.parametrize("edits, holds", [case[1:] for case in VALID_EDITS], ids=[case[0] for case in VALID_EDITS])
def test_valid_edit(production, edits, holds):
    for edit in edits:
        edit(*production)
    assert holds(build_spec(*production))


# --- properties of the build ----------------------------------------------------------------

def test_spec_is_plain_json(spec):
    assert json.loads(json.dumps(spec)) == spec


def built(environment):
    return build_spec(*load_inventory(environment))


def test_build_is_deterministic(example_env):
    """The same spec, list order included, here and in two processes that hash strings differently."""
    here = sha256_of(built(example_env))
    module = "ansible_collections.plinth.platform.tests.unit.plugins.module_utils.test_spec"
    elsewhere = [digest_in_fresh_process(module, "built", seed, example_env) for seed in (1, 2)]
    assert elsewhere == [here, here]


def test_input_is_not_modified(production):
    before = copy.deepcopy(production)
    build_spec(*production)
    assert production == before


def test_hostvars_are_optional(production):
    variables, groups, _hostvars = production
    spec = build_spec(variables, groups)
    assert spec["hosts"]["cp-1"] == {"address": "cp-1"}


KEY_RULE = "secret-key: a literal value under a secret-like key"
SECRETS = [
    # (where, value, shown instead)
    ("plinth_apps/0/values", {"db": {"password": "hunter2"}}, "plinth_apps[0].values.db.password: got '<redacted>'; " + KEY_RULE),
    ("plinth_apps/0/values", {"pin": {"api_key": 123456}}, "plinth_apps[0].values.pin.api_key: got '<redacted>'; " + KEY_RULE),
    ("plinth_apps/0/values", {"list": [{"token": "hunter2"}]}, "plinth_apps[0].values.list[0].token: got '<redacted>'; " + KEY_RULE),
    ("plinth_apps/0/values", {"tls": "-----BEGIN PRIVATE KEY-----\nhunter2\n-----END PRIVATE KEY-----"},
     "plinth_apps[0].values.tls: got '<redacted>'; private-key: a PEM private key"),
    ("plinth_gitops/repo_url", "https://bot:hunter2@git.example.com/acme/gitops.git",
     "plinth_gitops.repo_url: got '<redacted>'; url-credentials: a URL carries a password or token"),
    ("plinth_components/kong/admin_password", "hunter2",
     "plinth_components.kong.admin_password: got '<redacted>'; " + KEY_RULE),
    ("plinth_vault_token", "hunter2", "plinth_vault_token: got '<redacted>'; " + KEY_RULE),
]


@pytest.mark.parametrize("where, value, shown", SECRETS, ids=[case[2].split(":")[0] for case in SECRETS])
def test_secrets_are_reported_and_never_echoed(production, where, value, shown):
    _edit(where, value)(*production)
    with pytest.raises(SpecError) as caught:
        build_spec(*production)
    message = str(caught.value)
    assert shown in message
    assert "secret material must not sit in plain inventory" in message
    assert "hunter2" not in message and "123456" not in message


@pytest.mark.parametrize("text, value", [
    ("500m", 0.5), ("2", 2.0), ("1Gi", 2.0 ** 30), ("512Mi", 512 * 2.0 ** 20), ("1k", 1e3), ("1e3", 1e3),
    ("1.5", 1.5), ("256MB", None), ("lots", None), (None, None), (2, None),
])
def test_quantity(text, value):
    assert spec_module._quantity(text) == value


def test_unknown_group_is_reported_once_not_by_every_component_on_it(production):
    variables, groups, hostvars = production
    variables["plinth_node_pools"]["worker"]["group"] = "wrokers"
    with pytest.raises(SpecError) as caught:
        build_spec(variables, groups, hostvars)
    assert caught.value.errors == ["plinth_node_pools.worker.group: got 'wrokers'; no such inventory group"]


# --- the hosts' own network ------------------------------------------------------------

@pytest.mark.parametrize("edit, error", [
    (lambda v, h: h["worker-1"].update(ansible_host="198.51.100.41"),
     "plinth_host_network: got '192.0.2.0/24'; does not contain the address 198.51.100.41 of host worker-1"),
    (lambda v, h: v["plinth_control_plane_endpoint"].update(host="198.51.100.10"),
     "plinth_control_plane_endpoint.host: got '198.51.100.10'; lies outside plinth_host_network 192.0.2.0/24; "
     "kube-vip announces it on the hosts' network"),
    (lambda v, h: v.update(plinth_host_network="10.96.0.0/16"),
     "plinth_host_network: got '10.96.0.0/16'; overlaps plinth_service_cidr 10.96.0.0/12"),
])
def test_host_network_holds_every_host_and_the_endpoint(production, edit, error):
    variables, groups, hostvars = production
    edit(variables, hostvars)
    with pytest.raises(SpecError) as caught:
        build_spec(variables, groups, hostvars)
    assert error in caught.value.errors


def test_host_network_is_optional(production):
    del production[0]["plinth_host_network"]
    assert build_spec(*production)["host_network"] is None

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Hostile and careless inventories: each one is refused with a message, never a crash.

The corpus (tests/invalid/) proves the rules end to end on whole inventories; this
file pins each rule's wording and its edges, and sweeps every variable of the
production example with null and wrong types.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy
import subprocess

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec, local_chart_rule
from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory
# The same edits of the production inventory as the spec tests make.
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.test_spec import _edit as _set

__metaclass__ = type

BASE = load_inventory("production")


def _errors(edit):
    variables, groups, hostvars = copy.deepcopy(BASE)
    edit(variables, groups, hostvars)
    with pytest.raises(SpecError) as caught:
        build_spec(variables, groups, hostvars)
    return caught.value.errors


def _host(host, address):
    def edit(variables, groups, hostvars):
        hostvars[host]["ansible_host"] = address
    return edit


def _both(*edits):
    def edit(variables, groups, hostvars):
        for one in edits:
            one(variables, groups, hostvars)
    return edit


CLONE_PATH = "must be a relative path inside the GitOps clone"
NOT_GIT_URL = "must be a git URL: https://, http://, ssh://, git:// or file://, scp-like user@host:path, " \
              "or an absolute local path"
BRANCH = "must be a git branch name"
CHART = "charts must live in the GitOps repository so Argo CD and the bootstrap install read the same chart"

REFUSED = [
    # (id, edit, expected message)
    ("path-dotdot", _set("plinth_gitops/path", "../x"),
     "plinth_gitops.path: got '../x'; %s: no '..' segments" % CLONE_PATH),
    ("path-dotdot-inside", _set("plinth_gitops/path", "a/../../b"),
     "plinth_gitops.path: got 'a/../../b'; %s: no '..' segments" % CLONE_PATH),
    ("path-absolute", _set("plinth_gitops/path", "/abs"),
     "plinth_gitops.path: got '/abs'; %s, not an absolute path" % CLONE_PATH),
    ("path-manifest", _set("plinth_gitops/path", "envs/.plinth-generated-production"),
     "plinth_gitops.path: got 'envs/.plinth-generated-production'; must not have a segment starting with "
     "'.plinth-'"),
    ("path-git", _set("plinth_gitops/path", ".git/hooks"),
     "plinth_gitops.path: got '.git/hooks'; must not enter .git"),
    ("url-upload-pack", _set("plinth_gitops/repo_url", "--upload-pack=touch /tmp/x"),
     "plinth_gitops.repo_url: got '--upload-pack=touch /tmp/x'; must not start with '-': git would read it "
     "as an option"),
    ("url-proxy-command", _set("plinth_gitops/repo_url", "-oProxyCommand=x"),
     "plinth_gitops.repo_url: got '-oProxyCommand=x'; must not start with '-'"),
    ("url-ssh-host-option", _set("plinth_gitops/repo_url", "ssh://-oProxyCommand=x/acme.git"),
     "plinth_gitops.repo_url: got 'ssh://-oProxyCommand=x/acme.git'; " + NOT_GIT_URL),
    ("url-remote-helper", _set("plinth_gitops/repo_url", "ext::sh -c x"),
     "plinth_gitops.repo_url: got 'ext::sh -c x'; must not contain whitespace or control characters"),
    ("url-remote-helper-no-space", _set("plinth_gitops/repo_url", "ext::sh"),
     "plinth_gitops.repo_url: got 'ext::sh'; " + NOT_GIT_URL),
    ("url-space", _set("plinth_gitops/repo_url", "https://git.example.com/acme gitops.git"),
     "must not contain whitespace or control characters"),
    ("url-newline", _set("plinth_gitops/repo_url", "https://git.example.com/a\nb"),
     "must not contain whitespace or control characters"),
    ("url-relative", _set("plinth_gitops/repo_url", "acme/gitops"),
     "plinth_gitops.repo_url: got 'acme/gitops'; " + NOT_GIT_URL),
    ("revision-dash", _set("plinth_gitops/revision", "-x"), "plinth_gitops.revision: got '-x'; " + BRANCH),
    ("revision-dotdot", _set("plinth_gitops/revision", "a..b"), "plinth_gitops.revision: got 'a..b'; " + BRANCH),
    ("revision-lock", _set("plinth_gitops/revision", "main.lock"), BRANCH),
    ("revision-slash", _set("plinth_gitops/revision", "main/"), BRANCH),
    ("revision-space", _set("plinth_gitops/revision", "my branch"), BRANCH),
    ("chart-escapes", _set("plinth_apps/0/chart/repo", "../../../etc"),
     "plinth_apps[0].chart.repo: got '../../../etc'; leaves the GitOps clone; " + CHART),
    ("chart-absolute", _set("plinth_apps/0/chart/repo", "/srv/charts/x"),
     "plinth_apps[0].chart.repo: got '/srv/charts/x'; is an absolute chart path; " + CHART),
    ("chart-file-url", _set("plinth_components/kong/chart", {"repo": "file:///etc", "name": "kong",
                                                             "version": "1.0.0"}),
     "plinth_components.kong.chart.repo: got 'file:///etc'; is an absolute chart path; " + CHART),
    ("chart-escapes-under-path", _both(_set("plinth_gitops/path", "envs/prod"),
                                       _set("plinth_apps/0/chart/repo", "../../../charts/store")),
     "plinth_apps[0].chart.repo: got '../../../charts/store'; leaves the GitOps clone; " + CHART),
    ("name-root-application", _set("plinth_apps/0/name", "prod-root"),
     "plinth_apps[0].name: got 'prod-root'; is the name of the root Application"),
    ("name-external-secret-clash", _both(_set("plinth_apps/1/namespace", "store"),
                                         _set("plinth_apps/1/secrets", {"store-api-db": {"path": "x", "keys": ["k"]}})),
     "plinth_apps[1].secrets.store-api-db: got 'store-api-db'; is also an ExternalSecret of plinth_apps[0] "
     "(app store-api) in namespace store; two Argo CD Applications would own the same ExternalSecret and Secret"),
    ("name-helm-limit", _set("plinth_apps/0/name", "a" * 54),
     "plinth_apps[0].name: got '%s'; must be at most 53 characters: it is a Helm release name (54 characters)"
     % ("a" * 54)),
    ("name-file-too-long", _set("plinth_apps/0/secrets", {"a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "."
                                                          + "d" * 50: {"path": "x", "keys": ["k"]}}),
     "names the generated file externalsecret-aaaaaaaaaaaaaaaaaaaaaaaaa... of 262 bytes; file names may have "
     "at most 255"),
    ("limit-int32", _set("plinth_apps/0/replicas", 2147483648),
     "plinth_apps[0].replicas: got 2147483648; must be at most 2147483647"),
    ("limit-huge", _set("plinth_components/consul/replicas", 99999999999999),
     "plinth_components.consul.replicas: got 99999999999999; must be at most 2147483647"),
    ("limit-minimum", _set("plinth_apps/0/replicas", 0), "plinth_apps[0].replicas: got 0; must be at least 1"),
    ("address-octet", _host("worker-1", "300.1.1.11"),
     "hostvars['worker-1'].ansible_host: got '300.1.1.11'; is not a valid IPv4 address (Octet 300 (> 255) "
     "not permitted in '300.1.1.11')"),
    ("address-256", _host("cp-2", "10.0.0.256"), "hostvars['cp-2'].ansible_host: got '10.0.0.256'; "
     "is not a valid IPv4 address"),
    ("address-three-octets", _host("cp-2", "192.0.2"), "is not a valid IPv4 address"),
    ("address-ipv6", _host("cp-2", "fe80::g"), "is not a valid IPv6 address"),
    ("address-endpoint", _set("plinth_control_plane_endpoint", {"host": "192.0.2.300"}),
     "plinth_control_plane_endpoint.host: got '192.0.2.300'; is not a valid IPv4 address"),
    ("address-vip-is-a-worker", _set("plinth_control_plane_endpoint", {"host": "192.0.2.41"}),
     "plinth_control_plane_endpoint.host: got '192.0.2.41'; is the address of host worker-1, which is not a "
     "control-plane host"),
    ("address-vip-is-a-storage-host", _set("plinth_control_plane_endpoint", {"host": "192.0.2.32"}),
     "is the address of host ceph-2, which is not a control-plane host"),
    ("address-vip-is-one-of-three-control-plane-hosts", _set("plinth_control_plane_endpoint", {"host": "192.0.2.12"}),
     "is the address of host cp-2, one of 3 control-plane hosts"),
    ("null-component", _set("plinth_components/kong", None),
     "plinth_components.kong: got None; must be a mapping; an empty YAML value is null"),
    ("null-components", _set("plinth_components", None), "plinth_components: got None; must be a mapping"),
    ("null-pool", _set("plinth_node_pools/worker", None), "plinth_node_pools.worker: got None; must be a mapping"),
    ("null-app", _set("plinth_apps/1", None), "plinth_apps[1]: got None; must be a mapping"),
    ("null-gitops", _set("plinth_gitops", None), "plinth_gitops: got None; must be a mapping"),
    ("unknown-key-hides-its-value", _set("plinth_apps/0/foo", "a-private-looking-value"),
     "plinth_apps[0].foo: unknown key (known keys: autoscaling, chart, egress"),
]


@pytest.mark.parametrize("edit, message", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_refused(edit, message):
    errors = _errors(edit)
    assert [e for e in errors if message in e], errors


def test_unknown_key_never_echoes_its_value():
    errors = _errors(_set("plinth_apps/0/foo", "a-private-looking-value"))
    assert not [e for e in errors if "a-private-looking-value" in e]


def test_null_component_and_another_problem_are_both_reported():
    errors = _errors(_both(_set("plinth_components/kong", None), _set("plinth_apps/0/port", 0)))
    assert [e for e in errors if e.startswith("plinth_components.kong: got None; must be a mapping")], errors
    assert "plinth_apps[0].port: got 0; must be at least 1" in errors


def test_null_pool_is_still_a_known_pool():
    errors = _errors(_set("plinth_node_pools/worker", None))
    assert not [e for e in errors if "no such node pool" in e], errors


ACCEPTED = [
    ("url-scp", "plinth_gitops/repo_url", "git@git.example.com:acme/gitops.git"),
    ("url-https", "plinth_gitops/repo_url", "https://git.example.com/acme/gitops.git"),
    ("url-ssh-port", "plinth_gitops/repo_url", "ssh://git@git.example.com:2222/acme/gitops.git"),
    ("url-git", "plinth_gitops/repo_url", "git://git.example.com/acme/gitops.git"),
    ("url-file", "plinth_gitops/repo_url", "file:///srv/git/gitops.git"),
    ("url-local", "plinth_gitops/repo_url", "/srv/git/gitops.git"),
    ("revision-nested", "plinth_gitops/revision", "release/2026-08"),
    ("path-nested", "plinth_gitops/path", "envs/prod/"),
    ("path-dot", "plinth_gitops/path", "./platform"),
    ("chart-in-clone", "plinth_apps/0/chart/repo", "./charts/store-api"),
    ("chart-file-in-clone", "plinth_apps/0/chart/repo", "file://charts/store-api"),
    ("name-53", "plinth_apps/0/name", "a" * 53),
    ("replicas-int32", "plinth_apps/0/replicas", 10),
    ("endpoint-dns", "plinth_control_plane_endpoint", {"host": "api.example.com", "port": 6443}),
]


def _at(spec, where):
    """The spec's value for an inventory path: plinth_gitops/repo_url is spec["gitops"]["repo_url"]."""
    node = spec
    for part in where[len("plinth_"):].split("/"):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


@pytest.mark.parametrize("where, value", [case[1:] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED])
def test_accepted(where, value):
    variables, groups, hostvars = copy.deepcopy(BASE)
    if where == "plinth_apps/0/replicas":
        variables["plinth_apps"][0]["autoscaling"] = None
    _set(where, value)(variables, groups, hostvars)
    spec = build_spec(variables, groups, hostvars)
    assert _at(spec, where) == value, "accepted but not carried into the spec unchanged"


def test_a_single_control_plane_host_may_be_the_endpoint():
    """No VIP: the staging example points the endpoint at its one control-plane host."""
    spec = build_spec(*load_inventory("staging"))
    assert spec["control_plane_endpoint"]["host"] == spec["hosts"][spec["control_plane"]["hosts"][0]]["address"]


@pytest.mark.parametrize("prefix, repo, fine", [
    ("", "./charts/x", True),
    ("", "charts/x", True),
    ("", "../x", False),
    ("envs/prod", "./charts/x", True),
    ("envs/prod", "../../x", True),    # x, at the clone's root
    ("envs/prod", "../x", True),      # envs/x: inside the clone, read alike by Argo CD and helm
    ("envs/prod", "../../../x", False),
    ("", "/srv/x", False),
    ("", "file:///srv/x", False),
])
def test_local_chart_rule(prefix, repo, fine):
    assert (local_chart_rule(prefix, repo) is None) == fine


@pytest.mark.parametrize("name", ["main", "feature/x", "release-1.2", "a.b", "-x", "a..b", "x.lock", "x/", "/x",
                                  "a b", "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b", "a@{b", "@", ".x",
                                  "a/.b", "a//b", "a.", "a\tb", "a.lock/b"])
def test_git_branch_agrees_with_git(name):
    proc = subprocess.run(["git", "check-ref-format", "--branch", name], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, check=False)
    if name.startswith("-") or name == "@":
        assert s.git_branch(name)  # git reads "-x" as an option and expands "@" to the current branch
    else:
        assert (s.git_branch(name) is None) == (proc.returncode == 0), proc.stderr


def test_int_fields_are_int32_unless_smaller():
    assert s.Int().maximum == s.INT32_MAX
    assert s.Int(maximum=100).maximum == 100
    assert s.Int(maximum=2 ** 40).maximum == s.INT32_MAX


# --- every variable, set to null or to the wrong type: problems, never a crash ---------------

def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _paths(sub, prefix + (key,))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from _paths(sub, prefix + (index,))


PATHS = [p for p in _paths(BASE[0]) if p]


@pytest.mark.parametrize("bad", [None, "text", 7, [], {}, True], ids=["null", "str", "int", "list", "dict", "bool"])
def test_every_variable_with_a_bad_value_is_reported_not_a_crash(bad):
    crashes = []
    for path in PATHS:
        variables, groups, hostvars = copy.deepcopy(BASE)
        node = variables
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = copy.deepcopy(bad)
        try:
            build_spec(variables, groups, hostvars)
        except SpecError:
            pass
        except Exception as exc:  # noqa: BLE001 - any other exception is the bug under test
            crashes.append("%s: %r" % ("/".join(str(k) for k in path), exc))
    assert not crashes

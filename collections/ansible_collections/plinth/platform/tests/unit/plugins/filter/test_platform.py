# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The platform filters: thin wrappers that turn module_utils errors into AnsibleFilterError."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.plinth.platform.plugins.filter import platform
from ansible_collections.plinth.platform.plugins.module_utils.components import registry

__metaclass__ = type


def _spec(inventory):
    variables, groups, hostvars = inventory
    return platform.platform_spec(variables, groups, hostvars)


def _releases(with_values):
    return sorted(r.name for c in registry() for r in c.releases if (r.values is not None) == with_values)


def test_filters_are_exported():
    assert sorted(platform.FilterModule().filters()) == [
        "argocd_documents", "gitops_files", "gitops_summary", "helm_release", "helm_values", "platform_spec",
        "sync_waves", "vault_access", "widened_projects"]


def test_platform_spec_of_the_example_inventory(production):
    spec = _spec(production)
    assert spec["environment"] == production[0]["plinth_environment"]
    assert set(spec["components"]) == set(c.key for c in registry())


def test_platform_spec_reports_every_problem_at_once(production):
    variables = production[0]
    variables["plinth_cluster_name"] = "Bad_Name"
    variables["plinth_pod_cidr"] = "10.244.0.0/33"
    variables["plinth_components"]["kong"]["replicas"] = 7
    with pytest.raises(AnsibleFilterError) as exc:
        _spec(production)
    message = str(exc.value)
    assert "invalid inventory (3 problems)" in message
    assert "plinth_cluster_name: got 'Bad_Name'; must be a DNS label" in message
    assert "plinth_pod_cidr: got '10.244.0.0/33'; must be a network in CIDR notation" in message
    assert "plinth_components.kong.replicas: got 7; 7 replicas need 7 hosts in pool 'gateway'" in message


def test_platform_spec_reads_host_addresses_only(production):
    variables, groups, hostvars = production
    host = sorted(hostvars)[0]
    hostvars[host]["ansible_password"] = "not copied anywhere"
    spec = platform.platform_spec(variables, groups, hostvars)
    assert "not copied anywhere" not in repr(spec)


@pytest.mark.parametrize("name", ["gitops_files", "gitops_summary", "argocd_documents", "vault_access"])
def test_spec_filters_reject_anything_but_a_spec(name):
    with pytest.raises(AnsibleFilterError) as exc:
        getattr(platform, name)({"plinth_environment": "production"})
    assert "%s expects the output of plinth.platform.platform_spec, got dict" % name in str(exc.value)


def test_helm_values_of_every_release(production):
    spec = _spec(production)
    for release in _releases(with_values=True):
        assert isinstance(platform.helm_values(spec, release), dict), release


def test_helm_values_unknown_release_lists_the_known_ones(production):
    spec = _spec(production)
    with pytest.raises(AnsibleFilterError) as exc:
        platform.helm_values(spec, "nope")
    assert str(exc.value) == "unknown release 'nope' (known: %s)" % ", ".join(_releases(with_values=True))


def test_helm_values_of_a_raw_manifest_release(production):
    spec = _spec(production)
    raw = _releases(with_values=False)
    if not raw:
        pytest.skip("every release has Helm values")
    with pytest.raises(AnsibleFilterError) as exc:
        platform.helm_values(spec, raw[0])
    assert "release %r has no Helm values (raw manifests only)" % raw[0] in str(exc.value)


def test_helm_values_rejects_anything_but_a_spec():
    with pytest.raises(AnsibleFilterError) as exc:
        platform.helm_values("production", "kong")
    assert "helm_values expects the output of plinth.platform.platform_spec, got str" in str(exc.value)


def test_gitops_files_renders_text_files(production):
    files = platform.gitops_files(_spec(production))
    assert files
    assert all(isinstance(path, str) and isinstance(text, str) for path, text in files.items())


def test_gitops_summary_names_the_environment(production):
    summary = platform.gitops_summary(_spec(production))
    assert summary["environment"] == production[0]["plinth_environment"]


def test_helm_release_errors_are_filter_errors(production):
    with pytest.raises(AnsibleFilterError) as exc:
        platform.helm_release(_spec(production), "nope")
    assert "release 'nope' is not an enabled Helm release" in str(exc.value)


def test_helm_release_rejects_anything_but_a_spec():
    with pytest.raises(AnsibleFilterError) as exc:
        platform.helm_release("production", "cilium")
    assert "helm_release expects the output of plinth.platform.platform_spec, got str" in str(exc.value)

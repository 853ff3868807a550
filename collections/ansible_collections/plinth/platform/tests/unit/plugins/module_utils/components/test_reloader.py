# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Reloader: which Secrets it watches, its placement and policies, and Argo CD leaving its restarts alone."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import common, reloader
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    DEDICATED, build, manifests_of, names_of, network_policy, of_kind, options, spec_errors, taint_workers,
    values_of)

__metaclass__ = type

POINTER = "/spec/template/metadata/annotations/reloader.stakater.com~1last-reloaded-from"


def _on(inventory, **options):
    return build(inventory, reloader=dict({"enabled": True}, **options))


def _external_secrets(spec):
    return [d for d in gitops.raw_manifests(spec) if d["kind"] == "ExternalSecret"]


def test_disabled_by_default(production):
    options(production, "reloader").clear()
    spec = build(production)
    assert not spec["components"]["reloader"]["enabled"]
    assert not [path for path in gitops.argocd_documents(spec) if "reloader" in path]


def test_watches_only_labelled_secrets_and_restarts_by_annotation(production):
    values = values_of(_on(production), "reloader")["reloader"]
    assert values["autoReloadAll"] is True
    assert values["resourceLabelSelector"] == "plinth.io/reload=true"
    assert values["ignoreConfigMaps"] is True
    assert values["ignoreJobs"] is True and values["ignoreCronJobs"] is True
    assert values["reloadStrategy"] == "annotations"


def test_names_and_hardening(production):
    values = values_of(_on(production), "reloader")
    assert values["fullnameOverride"] == "reloader"
    assert values["reloader"]["readOnlyRootFileSystem"] is True
    context = values["reloader"]["deployment"]["containerSecurityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert values["reloader"]["deployment"]["resources"]["limits"]["memory"] == "256Mi"


def test_single_replica_without_leader_election_or_budget(production):
    values = values_of(_on(production), "reloader")["reloader"]
    assert values["deployment"]["replicas"] == 1
    assert values["enableHA"] is False
    assert values["podDisruptionBudget"]["enabled"] is False
    assert "topologySpreadConstraints" not in values["deployment"]


def test_replicas_elect_a_leader_and_spread(production):
    values = values_of(_on(production, replicas=2), "reloader")["reloader"]
    assert values["enableHA"] is True
    assert values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    [spread] = values["deployment"]["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == reloader.selector()


def test_tainted_pool_is_tolerated(production):
    spec = build(taint_workers(production), reloader={"enabled": True}, consul={"gossip_encryption": "none"})
    deployment = values_of(spec, "reloader")["reloader"]["deployment"]
    assert deployment["tolerations"] == [dict(DEDICATED, operator="Equal")]
    assert deployment["nodeSelector"] == spec["node_pools"]["worker"]["labels"]


def test_network_policies(production):
    spec = _on(production)
    docs = manifests_of(spec, "reloader")
    assert names_of(docs, "NetworkPolicy") == ["allow-apiserver", "allow-dns", "allow-metrics", "default-deny"]
    metrics = network_policy(docs, "allow-metrics")
    assert metrics["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "reloader",
                                                     "app.kubernetes.io/instance": "reloader"}
    assert metrics["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]
    assert metrics["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": spec["components"]["monitoring"]["namespace"]}
    assert {d["metadata"]["namespace"] for d in docs} == {"reloader"}
    assert values_of(spec, "reloader")["reloader"]["podMonitor"] == {"enabled": True}


def test_without_monitoring_no_scrape(production):
    spec = build(production, reloader={"enabled": True}, monitoring={"enabled": False})
    assert "allow-metrics" not in names_of(manifests_of(spec, "reloader"), "NetworkPolicy")
    assert "podMonitor" not in values_of(spec, "reloader")["reloader"]


def test_every_external_secret_labels_its_secret(production):
    secrets = _external_secrets(_on(production))
    assert secrets
    for secret in secrets:
        labels = secret["spec"]["target"]["template"]["metadata"]["labels"]
        assert labels == {"plinth.io/reload": "true"}, secret["metadata"]


def test_a_templated_secret_keeps_its_template(production):
    [kong] = [d for d in _external_secrets(_on(production)) if d["metadata"]["name"] == "kong-database"]
    template = kong["spec"]["target"]["template"]
    assert template["type"] == "kubernetes.io/basic-auth"
    assert template["data"]["password"] == "{{ .password }}"
    assert template["metadata"]["labels"] == {"plinth.io/reload": "true"}


def test_disabled_leaves_external_secrets_untouched(production):
    spec = build(production, reloader={"enabled": False})
    assert _external_secrets(spec)
    for secret in _external_secrets(spec):
        assert "metadata" not in (secret["spec"]["target"].get("template") or {})


def test_a_secret_may_opt_out(production):
    spec = _on(production)
    secret = common.external_secret(spec, "gossip", "consul", {"key": ("platform/consul", "key")}, reload=False)
    assert "template" not in secret["spec"]["target"]


def test_app_applications_ignore_the_restart_annotation(production):
    spec = _on(production)
    apps = dict((path, docs[0]) for path, docs in gitops.argocd_documents(spec).items() if "/apps-" in path)
    assert apps
    for path, app in apps.items():
        assert {"group": "apps", "kind": "Deployment", "jsonPointers": [POINTER]} in app["spec"]["ignoreDifferences"]
        assert "RespectIgnoreDifferences=true" in app["spec"]["syncPolicy"]["syncOptions"], path


def test_app_applications_unchanged_while_disabled(production):
    documents = gitops.argocd_documents(build(production, reloader={"enabled": False}))
    assert [path for path in documents if "/apps-" in path]
    for path, docs in documents.items():
        if "/apps-" in path:
            assert "ignoreDifferences" not in docs[0]["spec"]
            assert "RespectIgnoreDifferences=true" not in docs[0]["spec"]["syncPolicy"]["syncOptions"]


def test_tolerate_restarts_keeps_existing_ignores_and_adds_the_option_once(production):
    spec = _on(production)
    app = {"spec": {"ignoreDifferences": [{"kind": "Secret"}], "syncPolicy": {"syncOptions": ["A=1"]}}}
    reloader.tolerate_restarts(spec, app)
    reloader.tolerate_restarts(spec, app)
    assert app["spec"]["ignoreDifferences"][0] == {"kind": "Secret"}
    assert app["spec"]["syncPolicy"]["syncOptions"] == ["A=1", "RespectIgnoreDifferences=true"]
    assert [d["kind"] for d in reloader.ignore_differences(spec)] == ["Deployment", "StatefulSet", "DaemonSet"]


def test_chart_pinned(production):
    assert reloader.CHART == {"repo": "https://stakater.github.io/stakater-charts", "name": "reloader",
                              "version": "2.2.16"}
    spec = _on(production)
    assert spec["components"]["reloader"]["chart"]["version"] == "2.2.16"


@pytest.mark.parametrize("replicas", [4])
def test_replicas_must_fit_the_pool(production, replicas):
    errors = spec_errors(production, reloader={"enabled": True, "replicas": replicas})
    assert any(e.startswith("plinth_components.reloader.replicas: got 4;") for e in errors), errors


def test_needs_external_secrets(production):
    errors = spec_errors(production, reloader={"enabled": True}, external_secrets={"enabled": False})
    assert any(e.startswith("plinth_components.reloader.enabled: got True; restarts workloads") for e in errors)


def test_no_documents_of_other_kinds(production):
    docs = manifests_of(_on(production), "reloader")
    assert of_kind(docs, "NetworkPolicy") == docs

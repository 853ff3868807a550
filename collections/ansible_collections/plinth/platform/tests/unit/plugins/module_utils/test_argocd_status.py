# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Reading an Application's status: ready or not, given up or not, and why, in words."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils import argocd_status

__metaclass__ = type


def app(sync="Synced", health="Healthy", revisions=("3.4.1", "abc123"), phase="Succeeded", retries=0,
        message="", resources=(), conditions=(), limit=5, sync_results=()):
    return {
        "metadata": {"name": "kong"},
        "spec": {"syncPolicy": {"retry": {"limit": limit}}},
        "status": {
            "sync": {"status": sync, "revisions": list(revisions)},
            "health": {"status": health},
            "operationState": {"phase": phase, "message": message, "retryCount": retries,
                               "syncResult": {"resources": list(sync_results)}},
            "resources": list(resources),
            "conditions": list(conditions),
        },
    }


@pytest.mark.parametrize("application, revision, healthy, ready", [
    (app(), None, True, True),
    (app(), "abc123", True, True),
    (app(), "def456", True, False),
    (app(health="Progressing"), None, True, False),
    (app(health="Progressing"), None, False, True),
    (app(sync="OutOfSync"), None, False, False),
    (None, None, True, False),
])
def test_ready_means_synced_healthy_and_at_the_revision(application, revision, healthy, ready):
    assert argocd_status.is_ready(application, revision, healthy) is ready


def test_single_source_revision_counts():
    single = app()
    single["status"]["sync"] = {"status": "Synced", "revision": "abc123"}
    assert argocd_status.is_ready(single, "abc123")


@pytest.mark.parametrize("application, reason", [
    (app(phase="Failed", retries=5, message="one or more objects failed to apply"),
     "sync failed after 5 retries: one or more objects failed to apply"),
    (app(phase="Failed", retries=2), None),
    (app(phase="Running", retries=5), None),
    (app(phase="Error", retries=0, limit=0, message="boom"), "sync error after 0 retries: boom"),
    (app(phase="Failed", retries=9, limit=-1), None),
    (None, None),
])
def test_argo_cd_gives_up_only_after_its_last_retry(application, reason):
    assert argocd_status.gave_up(application) == reason


def test_explain_names_conditions_operation_and_unhealthy_resources():
    broken = app(sync="OutOfSync", health="Progressing", phase="Failed", message="one or more objects failed",
                 conditions=[{"type": "SyncError", "message": "ClusterRole is not permitted in project 'business'"}],
                 resources=[
                     {"kind": "Service", "namespace": "kong", "name": "kong-proxy", "status": "Synced",
                      "health": {"status": "Progressing", "message": "Waiting for an address"}},
                     {"group": "apps", "kind": "Deployment", "namespace": "kong", "name": "kong",
                      "status": "OutOfSync", "health": {"status": "Healthy"}},
                     {"kind": "ConfigMap", "namespace": "kong", "name": "fine", "status": "Synced",
                      "health": {"status": "Healthy"}},
                 ],
                 sync_results=[{"group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "x",
                                "status": "SyncFailed", "message": "not permitted"}])
    text = argocd_status.explain("kong", broken, "def456")
    assert text == (
        "kong: sync OutOfSync, health Progressing; at revision 3.4.1, abc123, waiting for def456; "
        "condition SyncError: ClusterRole is not permitted in project 'business'; "
        "last sync Failed: one or more objects failed; "
        "not ready: Service kong/kong-proxy (Progressing: Waiting for an address); "
        "Deployment.apps kong/kong (OutOfSync); ClusterRole.rbac.authorization.k8s.io x (sync failed: not permitted)")


def test_explain_a_missing_application():
    assert argocd_status.explain("kong", None) == \
        "kong: not created yet (the root Application has not applied it)"


def test_long_lists_are_cut():
    many = app(health="Degraded", resources=[{"kind": "Pod", "name": "p%d" % i, "health": {"status": "Degraded"}}
                                             for i in range(15)])
    found = argocd_status.not_ready_resources(many)
    assert len(found) == 11 and found[-1] == "and 5 more"

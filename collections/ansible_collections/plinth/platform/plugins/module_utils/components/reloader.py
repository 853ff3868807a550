# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Reloader: restarts the workloads that use a Secret when its value changes.

Which Secrets: only those carrying ``common.RELOAD_LABEL``.  Every Secret an
ExternalSecret of the tree makes carries it while this component is enabled
(``common.external_secret``), so a rotation in Vault or in a cloud store,
picked up at the ExternalSecret's refresh interval, rolls the Deployments,
StatefulSets and DaemonSets that read that Secret (Jobs and CronJobs are left
alone).  No workload needs an
annotation: Reloader runs with auto-reload-all, narrowed by its resource label
selector to those Secrets; ConfigMaps are not watched (the tree's own
ConfigMaps roll their pods through a checksum annotation instead).

Argo CD: the "annotations" reload strategy writes one annotation,
``ANNOTATION``, on the pod template; the Applications of the workloads it may
restart ignore that one field (``IGNORE_DIFFERENCES``), so self-heal does not
undo a restart, and nothing else of the pod template escapes comparison.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RELEASE = "reloader"
CHART = {"repo": "https://stakater.github.io/stakater-charts", "name": "reloader", "version": "2.2.16"}
METRICS_PORT = 9090
ANNOTATION = "reloader.stakater.com/last-reloaded-from"
RESPECT_IGNORE = "RespectIgnoreDifferences=true"
# JSON pointer: "/" inside a key is written "~1".
_POINTER = "/spec/template/metadata/annotations/" + ANNOTATION.replace("~", "~0").replace("/", "~1")
IGNORE_DIFFERENCES = [
    {"group": "apps", "kind": kind, "jsonPointers": [_POINTER]}
    for kind in ("Deployment", "StatefulSet", "DaemonSet")
]

OPTIONS = {
    "replicas": s.Int(1, minimum=1, doc="Reloader pods; more than one elect a leader."),
    "resources": s.Resources("10m", "64Mi", "200m", "256Mi"),
}


def selector():
    """The chart's labels on Reloader's pods (release and chart are both named reloader)."""
    return {"app.kubernetes.io/name": "reloader", "app.kubernetes.io/instance": RELEASE}


def ignore_differences(spec):
    """What an Application whose workloads read reloadable Secrets must not compare (none while disabled)."""
    return [dict(item) for item in IGNORE_DIFFERENCES] if common.enabled(spec, "reloader") else []


def tolerate_restarts(spec, application):
    """``application`` (an Argo CD Application document) made to ignore Reloader's restarts."""
    ignored = ignore_differences(spec)
    if not ignored:
        return application
    app_spec = application["spec"]
    app_spec["ignoreDifferences"] = list(app_spec.get("ignoreDifferences") or []) + ignored
    options = app_spec["syncPolicy"].setdefault("syncOptions", [])
    if RESPECT_IGNORE not in options:
        options.append(RESPECT_IGNORE)
    return application


def _deployment(spec, settings):
    replicas = settings["replicas"]
    deployment = dict(common.placement(spec, settings["pool"]), **{
        "replicas": replicas,
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "resources": settings["resources"],
    })
    if replicas > 1:
        deployment["topologySpreadConstraints"] = [common.spread(selector())]
    return deployment


def values(spec, settings):
    replicas = settings["replicas"]
    reloader = {
        "autoReloadAll": True,
        "resourceLabelSelector": "%s=%s" % common.RELOAD_LABEL,
        "ignoreConfigMaps": True,
        # Recreating a Job (a chart's migration hook) on a rotation is not a restart: long-running workloads only.
        "ignoreJobs": True,
        "ignoreCronJobs": True,
        # An annotation, not an environment variable: one known field for Argo CD to ignore.
        "reloadStrategy": "annotations",
        "watchGlobally": True,
        "enableHA": replicas > 1,
        # The chart then mounts an emptyDir on /tmp.
        "readOnlyRootFileSystem": True,
        "deployment": _deployment(spec, settings),
        "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": common.pdb_min_available(replicas)},
    }
    if common.enabled(spec, "monitoring"):
        # The chart's Service is off by default and its ServiceMonitor is deprecated: scrape the pods.
        reloader["podMonitor"] = {"enabled": True}
    # Names the Deployment, ServiceAccount and RBAC objects "reloader" instead of "reloader-reloader".
    return {"fullnameOverride": RELEASE, "reloader": reloader}


def manifests(spec, settings):
    return common.controller_policies(spec, settings["namespace"], selector(), METRICS_PORT)


def check(spec, settings, errors, path):
    if settings["replicas"] > 1:
        common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])
    if not common.enabled(spec, "external_secrets"):
        errors.add(path + ".enabled", True, "restarts workloads when a Secret made by an ExternalSecret changes: "
                                            "needs plinth_components.external_secrets.enabled: true")


COMPONENT = Component(
    key="reloader", title="Reloader", namespace="reloader", project="platform", pool="worker",
    enabled=False, pod_security="restricted", options=OPTIONS, check=check,
    releases=[Release(RELEASE, 55, CHART, values=values, manifests=manifests)],
    doc="Stakater Reloader: rolls the workloads that read a Secret synced by an ExternalSecret when it changes.",
)

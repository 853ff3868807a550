# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""What an Argo CD Application's status says: ready or not, and why not, in words.

Plain functions over the Application as the API returns it, so the wait module
stays a thin loop and the wording is tested on its own.
"""

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

FINAL_FAILURES = ("Failed", "Error")


def summary(app):
    """``{sync, health, revisions, operation}`` of an Application (``None`` when it is missing)."""
    if app is None:
        return {"sync": "Missing", "health": "Missing", "revisions": [], "operation": None}
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    revisions = list(sync.get("revisions") or ([sync["revision"]] if sync.get("revision") else []))
    operation = status.get("operationState") or {}
    return {
        "sync": sync.get("status") or "Unknown",
        "health": (status.get("health") or {}).get("status") or "Unknown",
        "revisions": revisions,
        "operation": operation.get("phase"),
    }


def is_ready(app, revision=None, healthy=True):
    """Synced (at ``revision`` when given) and, when ``healthy``, Healthy."""
    found = summary(app)
    if found["sync"] != "Synced" or (healthy and found["health"] != "Healthy"):
        return False
    return revision is None or revision in found["revisions"]


def gave_up(app):
    """The reason Argo CD stopped trying to sync, or None while it may still get there.

    A sync that failed after its last retry stays failed until the next change or a
    manual sync; waiting for it longer tells the user nothing new.
    """
    if app is None:
        return None
    operation = (app.get("status") or {}).get("operationState") or {}
    if operation.get("phase") not in FINAL_FAILURES:
        return None
    limit = ((((app.get("spec") or {}).get("syncPolicy") or {}).get("retry") or {}).get("limit"))
    retries = operation.get("retryCount") or 0
    if limit is None or limit < 0 or retries < limit:
        return None
    return "sync %s after %d retries: %s" % (operation["phase"].lower(), retries,
                                             (operation.get("message") or "").strip())


def _resource_name(res):
    kind = res.get("kind") or "?"
    group = res.get("group")
    name = res.get("name") or "?"
    if res.get("namespace"):
        name = "%s/%s" % (res["namespace"], name)
    return "%s%s %s" % (kind, "." + group if group else "", name)


def not_ready_resources(app, limit=10):
    """The Application's resources that are out of sync or not healthy, one phrase each."""
    found = []
    status = (app or {}).get("status") or {}
    for res in status.get("resources") or []:
        health = res.get("health") or {}
        problems = []
        if res.get("status") and res["status"] != "Synced":
            problems.append(res["status"])
        if health.get("status") and health["status"] != "Healthy":
            problems.append(health["status"] + (": " + health["message"] if health.get("message") else ""))
        if problems:
            found.append("%s (%s)" % (_resource_name(res), ", ".join(problems)))
    failed = ((status.get("operationState") or {}).get("syncResult") or {}).get("resources") or []
    for res in failed:
        if res.get("status") in ("SyncFailed", "Failed") or res.get("hookPhase") in ("Failed", "Error"):
            found.append("%s (sync failed: %s)" % (_resource_name(res), (res.get("message") or "").strip()))
    if len(found) > limit:
        found = found[:limit] + ["and %d more" % (len(found) - limit)]
    return found


def explain(name, app, revision=None):
    """Why Application ``name`` is not ready, as one paragraph."""
    if app is None:
        return "%s: not created yet (the root Application has not applied it)" % name
    found = summary(app)
    parts = ["%s: sync %s, health %s" % (name, found["sync"], found["health"])]
    if revision is not None and revision not in found["revisions"]:
        parts.append("at revision %s, waiting for %s" % (", ".join(found["revisions"]) or "none", revision))
    status = app.get("status") or {}
    health_message = (status.get("health") or {}).get("message")
    if health_message:
        parts.append("health message: %s" % health_message)
    for condition in status.get("conditions") or []:
        parts.append("condition %s: %s" % (condition.get("type"), (condition.get("message") or "").strip()))
    operation = status.get("operationState") or {}
    if operation.get("phase") and operation.get("phase") != "Succeeded":
        parts.append("last sync %s: %s" % (operation["phase"], (operation.get("message") or "").strip()))
    resources = not_ready_resources(app)
    if resources:
        parts.append("not ready: " + "; ".join(resources))
    return "; ".join(parts)

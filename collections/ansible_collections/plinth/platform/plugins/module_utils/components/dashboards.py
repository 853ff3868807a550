# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The platform overview dashboard: one Grafana page for the state of everything Plinth deploys.

The charts bring their own detailed dashboards; this one answers "is the platform
well?" at a glance: Plinth's alerts firing, Argo CD Applications by health and sync
status, Vault servers sealed, ExternalSecrets failing, Ceph health, the control plane's
targets, certificate lifetimes and node CPU and memory.  It is a ConfigMap labelled
``grafana_dashboard: "1"``, which Grafana's dashboard sidecar loads from any namespace;
panels of disabled components are left out.
"""

from __future__ import absolute_import, annotations, division, print_function

import json

from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

NAME = "plinth-platform-overview"
UID = "plinth-overview"
LABEL = {"grafana_dashboard": "1"}
WIDTH = 24
HEIGHT = 8
# Every panel queries the data source the viewer picks, Prometheus by default.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
CONTROL_PLANE_JOBS = "apiserver|kube-controller-manager|kube-scheduler|kube-etcd|kubelet|coredns"
CEPH_STATES = {"0": ("HEALTH_OK", "green"), "1": ("HEALTH_WARN", "orange"), "2": ("HEALTH_ERR", "red")}


def _target(expr, legend=None, instant=False):
    target = {"datasource": DATASOURCE, "expr": expr, "refId": "A"}
    if legend:
        target["legendFormat"] = legend
    if instant:
        target.update(instant=True, range=False)
    return target


def _thresholds(*steps):
    """Colour steps: (lowest value or None for the base, colour)."""
    return {"mode": "absolute", "steps": [{"value": value, "color": colour} for value, colour in steps]}


def stat(title, expr, legend=None, width=6, thresholds=None, mappings=None, unit=None):
    defaults = {"thresholds": thresholds or _thresholds((None, "green"), (1, "red"))}
    if mappings:
        defaults["mappings"] = mappings
    if unit:
        defaults["unit"] = unit
    return {"type": "stat", "title": title, "width": width, "datasource": DATASOURCE,
            "targets": [_target(expr, legend, instant=True)],
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}}


def timeseries(title, expr, legend, unit, width=12):
    return {"type": "timeseries", "title": title, "width": width, "datasource": DATASOURCE,
            "targets": [_target(expr, legend)],
            "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def table(title, expr, width=24):
    return {"type": "table", "title": title, "width": width, "datasource": DATASOURCE,
            "targets": [dict(_target(expr, instant=True), format="table")],
            "fieldConfig": {"defaults": {}, "overrides": []},
            "options": {"showHeader": True}}


def _ceph_mappings():
    return [{"type": "value", "options": dict(
        (value, {"text": text, "color": colour, "index": int(value)})
        for value, (text, colour) in sorted(CEPH_STATES.items()))}]


def _count(expr):
    """How many series match, 0 rather than no data when none do."""
    return "count(%s) or vector(0)" % expr


def component_panels(spec):
    panels = []
    if common.enabled(spec, "argocd"):
        panels += [
            stat("Argo CD apps by health", "count by (health_status) (argocd_app_info)", "{{health_status}}",
                 thresholds=_thresholds((None, "blue"))),
            stat("Argo CD apps by sync status", "count by (sync_status) (argocd_app_info)", "{{sync_status}}",
                 thresholds=_thresholds((None, "blue"))),
        ]
    if common.enabled(spec, "vault"):
        panels.append(stat("Vault servers sealed", _count("vault_core_unsealed == 0")))
    if common.enabled(spec, "external_secrets"):
        panels.append(stat("ExternalSecrets failing",
                           _count('externalsecret_status_condition{condition="Ready", status="False"} == 1')))
    if common.enabled(spec, "rook_ceph"):
        panels.append(stat("Ceph health", "max(ceph_health_status)", mappings=_ceph_mappings(),
                           thresholds=_thresholds((None, "green"), (1, "orange"), (2, "red"))))
    return panels


def platform_panels(spec):
    return [
        stat("Control-plane targets up", 'sum by (job) (up{job=~"%s"})' % CONTROL_PLANE_JOBS, "{{job}}",
             width=12, thresholds=_thresholds((None, "red"), (1, "green"))),
        stat("Shortest kubelet certificate lifetime",
             "min(kubelet_certificate_manager_client_ttl_seconds) or "
             "min(kubelet_certificate_manager_server_ttl_seconds)",
             unit="s", width=12, thresholds=_thresholds((None, "red"), (7 * 86400, "orange"), (30 * 86400, "green"))),
        timeseries("Node CPU busy", '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))',
                   "{{instance}}", "percentunit"),
        timeseries("Node memory used", "1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes",
                   "{{instance}}", "percentunit"),
        table("Plinth alerts firing", 'ALERTS{alertstate="firing", alertname=~"Plinth.*"}'),
    ]


def layout(panels):
    """Grafana's grid positions, left to right then down, and panel ids."""
    x = y = 0
    placed = []
    for number, panel in enumerate(panels, 1):
        panel = dict(panel)
        width = panel.pop("width")
        if x + width > WIDTH:
            x, y = 0, y + HEIGHT
        panel["id"] = number
        panel["gridPos"] = {"x": x, "y": y, "w": width, "h": HEIGHT}
        placed.append(panel)
        x += width
    return placed


def dashboard(spec):
    """The overview dashboard's JSON model."""
    return {
        "uid": UID,
        "title": "Plinth platform overview",
        "tags": ["plinth"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Data source", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "panels": layout(component_panels(spec) + platform_panels(spec)),
    }


def config_map(spec, settings):
    """The ConfigMap Grafana's sidecar loads the dashboard from, or None without Grafana."""
    if not settings["grafana"]["enabled"]:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(NAME, settings["namespace"], labels=LABEL),
        "data": {NAME + ".json": json.dumps(dashboard(spec), indent=2, sort_keys=True) + "\n"},
    }

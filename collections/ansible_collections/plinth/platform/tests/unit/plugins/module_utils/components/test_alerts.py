# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Plinth's alerting rules and overview dashboard: one per enabled component, real metric names.

What the rules do on data is promtool's to test (tests/test_alert_rules.py); here, what is rendered.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy
import json

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import alerts, dashboards
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, spec_errors)

__metaclass__ = type


@pytest.fixture
def spec(production):
    return build(production)


def _settings(spec):
    return spec["components"]["monitoring"]


def _rules(spec):
    return dict((r["alert"], r) for g in alerts.groups(spec, _settings(spec)) for r in g["rules"])


def _without(spec, *keys):
    spec = copy.deepcopy(spec)
    for key in keys:
        spec["components"][key]["enabled"] = False
    return spec


def test_production_has_a_rule_for_each_platform_concern(spec):
    assert alerts.alert_names(spec, _settings(spec)) == [
        "PlinthArgoCDApplicationUnhealthy", "PlinthArgoCDApplicationOutOfSync",
        "PlinthVaultSealed", "PlinthVaultDown",
        "PlinthExternalSecretNotReady",
        "PlinthCephHealthError", "PlinthCephHealthWarning",
        "PlinthKubeletClientCertificateExpiring", "PlinthKubeletServingCertificateExpiring",
        "PlinthAPIServerClientCertificateExpiring", "PlinthEtcdBackupMissing",
    ]


def test_every_alert_has_a_severity_and_says_what_to_do(spec):
    for name, rule in _rules(spec).items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        assert set(rule["annotations"]) == {"summary", "description"}, name
        assert len(rule["annotations"]["description"]) > 80, name


@pytest.mark.parametrize("metric, alert", [
    ('argocd_app_info{health_status=~"Degraded', "PlinthArgoCDApplicationUnhealthy"),
    ('argocd_app_info{sync_status="OutOfSync"}', "PlinthArgoCDApplicationOutOfSync"),
    ("vault_core_unsealed{", "PlinthVaultSealed"),
    ("absent(up{", "PlinthVaultDown"),
    ('externalsecret_status_condition{condition="Ready", status="False"}', "PlinthExternalSecretNotReady"),
    ("ceph_health_status == 2", "PlinthCephHealthError"),
    ("kubelet_certificate_manager_client_ttl_seconds <", "PlinthKubeletClientCertificateExpiring"),
    ("kubelet_certificate_manager_server_ttl_seconds <", "PlinthKubeletServingCertificateExpiring"),
    ("apiserver_client_certificate_expiration_seconds_bucket", "PlinthAPIServerClientCertificateExpiring"),
])
def test_rules_read_the_metrics_the_components_export(spec, metric, alert):
    assert metric in _rules(spec)[alert]["expr"]


def test_vault_rules_follow_its_namespace(spec):
    spec = copy.deepcopy(spec)
    spec["components"]["vault"]["namespace"] = "secrets"
    assert 'namespace="secrets"' in _rules(spec)["PlinthVaultDown"]["expr"]


@pytest.mark.parametrize("key, gone", [
    ("argocd", ["PlinthArgoCDApplicationUnhealthy", "PlinthArgoCDApplicationOutOfSync"]),
    ("vault", ["PlinthVaultSealed", "PlinthVaultDown"]),
    ("external_secrets", ["PlinthExternalSecretNotReady"]),
    ("rook_ceph", ["PlinthCephHealthError", "PlinthCephHealthWarning"]),
])
def test_rules_of_disabled_components_are_left_out(spec, key, gone):
    names = alerts.alert_names(_without(spec, key), _settings(spec))
    assert not set(gone) & set(names)
    assert "PlinthKubeletClientCertificateExpiring" in names


def test_certificate_threshold_is_an_option(production):
    spec = build(production, monitoring={"alerts": {"certificate_expiry": "30d"}})
    rule = _rules(spec)["PlinthKubeletServingCertificateExpiring"]
    assert rule["expr"] == "kubelet_certificate_manager_server_ttl_seconds < 2592000"
    assert "30d" in rule["annotations"]["summary"]


def test_etcd_backup_rule_waits_for_its_threshold(production):
    spec = build(production, monitoring={"alerts": {"etcd_backup_max_age": "1d12h"}})
    rule = _rules(spec)["PlinthEtcdBackupMissing"]
    assert rule["expr"] == ("time() - max(plinth_etcd_backup_last_success_timestamp_seconds) > 129600 "
                            "or absent(plinth_etcd_backup_last_success_timestamp_seconds)")
    assert rule["labels"] == {"severity": "critical"}


def test_etcd_backup_rule_is_on_by_default_and_off_with_null(production):
    # Two runs of the backup timer's default 6h schedule may be missed, not a third.
    assert " > 46800 " in _rules(build(production))["PlinthEtcdBackupMissing"]["expr"]
    assert "PlinthEtcdBackupMissing" not in _rules(build(production, monitoring={"alerts": {"etcd_backup_max_age": None}}))


@pytest.mark.parametrize("option, value", [("certificate_expiry", "a week"), ("etcd_backup_max_age", "0h")])
def test_thresholds_must_be_durations(production, option, value):
    errors = spec_errors(production, monitoring={"alerts": {option: value}})
    assert ("plinth_components.monitoring.alerts.%s: got %r; must be a positive duration like 30d, 12h or 1h30m"
            % (option, value)) in errors


@pytest.mark.parametrize("duration, seconds", [("7d", 604800), ("1h30m", 5400), ("26h", 93600), ("1w", 604800)])
def test_durations_in_seconds(duration, seconds):
    assert alerts.seconds(duration) == seconds


def test_rules_are_off_when_asked(production):
    spec = build(production, monitoring={"alerts": {"enabled": False}})
    assert alerts.prometheus_rule(spec, _settings(spec)) is None


# --- the overview dashboard ------------------------------------------------------------

def _dashboard(spec):
    config_map = dashboards.config_map(spec, _settings(spec))
    return json.loads(config_map["data"]["plinth-platform-overview.json"])


def _titles(spec):
    return [panel["title"] for panel in _dashboard(spec)["panels"]]


def test_dashboard_covers_the_platform(spec):
    assert _titles(spec) == [
        "Argo CD apps by health", "Argo CD apps by sync status", "Vault servers sealed", "ExternalSecrets failing",
        "Ceph health", "Control-plane targets up", "Shortest kubelet certificate lifetime", "Node CPU busy",
        "Node memory used", "Plinth alerts firing"]


def test_dashboard_panels_fit_the_grid_without_overlap(spec):
    seen = set()
    for panel in _dashboard(spec)["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24
        cells = set((x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"]))
        assert not cells & seen, panel["title"]
        seen |= cells
    assert len(set(p["id"] for p in _dashboard(spec)["panels"])) == len(_dashboard(spec)["panels"])


def test_dashboard_queries_the_chosen_data_source(spec):
    model = _dashboard(spec)
    assert model["uid"] == "plinth-overview"
    assert model["templating"]["list"][0]["type"] == "datasource"
    for panel in model["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["expr"] for t in panel["targets"])


def test_dashboard_leaves_out_disabled_components(spec):
    titles = _titles(_without(spec, "vault", "rook_ceph"))
    assert "Vault servers sealed" not in titles and "Ceph health" not in titles
    assert "Argo CD apps by health" in titles


def test_no_dashboard_without_grafana(production):
    spec = build(production, monitoring={"grafana": {"enabled": False}})
    assert dashboards.config_map(spec, _settings(spec)) is None

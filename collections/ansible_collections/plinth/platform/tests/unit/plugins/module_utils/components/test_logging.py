# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Logging: off by default; Loki single binary on Ceph, Fluent Bit everywhere, policies, Grafana, checks."""

from __future__ import absolute_import, annotations, division, print_function

import json

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import gitops, secrets
from ansible_collections.plinth.platform.plugins.module_utils.components import logging
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, check_errors, component, find, manifests_of, names_of, network_policy, of_kind, options, spec_errors,
    values_of)

__metaclass__ = type

ON = {"enabled": True}
LOKI = {"app.kubernetes.io/name": "loki", "app.kubernetes.io/instance": "loki"}
COLLECTOR = {"app.kubernetes.io/name": "fluent-bit", "app.kubernetes.io/instance": "fluent-bit"}


def _loki(spec):
    return values_of(spec, "logging", "loki")


def _collector(spec):
    return values_of(spec, "logging", "fluent-bit")


def _docs(spec):
    return manifests_of(spec, "logging")


@pytest.fixture
def spec(production):
    """Logging switched on with nothing else set: the defaults, whatever the example inventory sets."""
    options(production, "logging").clear()
    return build(production, logging=dict(ON))


# --- defaults ------------------------------------------------------------------------

def test_off_by_default_and_nothing_rendered(production):
    options(production, "logging").clear()
    spec = build(production)
    assert spec["components"]["logging"]["enabled"] is False
    assert not [path for path in gitops.render(spec) if "loki" in path or "fluent-bit" in path]


def test_declared_in_the_platform_project_with_privileged_pod_security():
    declared = component("logging")
    assert (declared.namespace, declared.project, declared.pool) == ("logging", "platform", "worker")
    assert declared.pod_security == "privileged"


def test_charts_are_pinned(spec):
    settings = spec["components"]["logging"]
    assert settings["chart"] == {"repo": "https://grafana.github.io/helm-charts", "name": "loki",
                                 "version": "7.3.0"}
    assert settings["collector_chart"] == {"repo": "https://fluent.github.io/helm-charts", "name": "fluent-bit",
                                           "version": "0.58.1"}


def test_the_namespace_is_labelled_privileged_for_hostpath(spec):
    files = gitops.render(spec)
    for release in ("loki", "fluent-bit"):
        app = yaml.safe_load(files["clusters/production/apps/platform-%s.yaml" % release].split("---\n", 1)[1])
        labels = app["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "privileged"
        assert app["spec"]["destination"]["namespace"] == "logging"


def test_loki_comes_after_ceph_and_the_collector_after_loki(spec):
    waves = dict((name, w["wave"]) for w in gitops.sync_waves(spec) for name in w["applications"])
    assert waves["rook-ceph-cluster"] < waves["loki"] < waves["fluent-bit"]
    assert waves["prometheus-operator-crds"] < waves["loki"]


# --- Loki ------------------------------------------------------------------------------

def test_loki_is_one_single_binary_on_a_ceph_volume(spec):
    values = _loki(spec)
    assert values["deploymentMode"] == "SingleBinary"
    single = values["singleBinary"]
    assert single["replicas"] == 1
    assert single["persistence"] == {"enabled": True, "accessModes": ["ReadWriteOnce"], "size": "50Gi",
                                     "storageClass": "rook-ceph-block", "enableStatefulSetAutoDeletePVC": False}
    assert values["loki"]["storage"] == {"type": "filesystem"}
    assert values["loki"]["commonConfig"] == {"replication_factor": 1}
    [schema] = values["loki"]["schemaConfig"]["configs"]
    assert (schema["store"], schema["object_store"], schema["schema"]) == ("tsdb", "filesystem", "v13")
    assert values["loki"]["auth_enabled"] is False
    for target in ("read", "write", "backend"):
        assert values[target] == {"replicas": 0}


def test_loki_deletes_logs_older_than_the_retention(production):
    values = _loki(build(production, logging=dict(ON, retention="30d")))
    assert values["loki"]["limits_config"] == {"retention_period": "30d"}
    assert values["loki"]["compactor"] == {"retention_enabled": True, "delete_request_store": "filesystem"}


def test_default_retention_is_two_weeks(spec):
    assert _loki(spec)["loki"]["limits_config"]["retention_period"] == "14d"


def test_everything_else_the_chart_would_deploy_is_off(spec):
    values = _loki(spec)
    for key in ("gateway", "chunksCache", "resultsCache", "lokiCanary", "test", "minio", "rollout_operator"):
        assert values[key] == {"enabled": False}, key
    assert values["sidecar"] == {"rules": {"enabled": False}}
    watched = values["monitoring"]
    assert watched["selfMonitoring"] == {"enabled": False, "grafanaAgent": {"installOperator": False}}
    assert watched["serviceMonitor"]["metricsInstance"] == {"enabled": False}
    assert watched["dashboards"] == {"enabled": False} and watched["rules"] == {"enabled": False}
    assert values["serviceAccount"] == {"automountServiceAccountToken": False}


def test_loki_follows_the_component_pool(production):
    values = _loki(build(production, logging=dict(ON, pool="gateway")))
    assert values["singleBinary"]["nodeSelector"] == {"node.kong.gateway": "true"}
    assert values["singleBinary"]["tolerations"] == [{"key": "node.kong.gateway", "operator": "Equal",
                                                      "value": "true", "effect": "NoSchedule"}]


def test_default_pool_is_the_workers(spec):
    assert _loki(spec)["singleBinary"]["nodeSelector"] == {"node.role": "worker"}


def test_storage_size_and_class_are_options(production):
    values = _loki(build(production, logging=dict(ON, storage="200Gi", storage_class="local-nvme")))
    assert values["singleBinary"]["persistence"]["size"] == "200Gi"
    assert values["singleBinary"]["persistence"]["storageClass"] == "local-nvme"


def test_storage_class_follows_rook_ceph(production):
    values = _loki(build(production, logging=dict(ON), rook_ceph={"storage_class": "ceph-fast"}))
    assert values["singleBinary"]["persistence"]["storageClass"] == "ceph-fast"


def test_scraped_by_prometheus_when_monitoring_is_on(spec):
    assert _loki(spec)["monitoring"]["serviceMonitor"]["enabled"] is True
    assert _collector(spec)["serviceMonitor"] == {"enabled": True}


# --- the collector -------------------------------------------------------------------

def test_collector_runs_on_every_node(spec):
    values = _collector(spec)
    assert values["kind"] == "DaemonSet"
    tolerated = [(t["key"], t.get("value"), t["effect"]) for t in values["tolerations"]]
    for pool in spec["node_pools"].values():
        for taint in pool["taints"]:
            assert (taint["key"], taint["value"], taint["effect"]) in tolerated
    assert ("node-role.kubernetes.io/control-plane", None, "NoSchedule") in tolerated
    assert "nodeSelector" not in values


def test_collector_reads_host_logs_read_only(spec):
    values = _collector(spec)
    paths = dict((v["name"], v["hostPath"]["path"]) for v in values["daemonSetVolumes"])
    assert paths == {"varlog": "/var/log", "etcmachineid": "/etc/machine-id", "state": "/var/lib/fluent-bit"}
    mounts = dict((m["name"], m) for m in values["daemonSetVolumeMounts"])
    assert mounts["varlog"]["readOnly"] is True and mounts["etcmachineid"]["readOnly"] is True
    assert "/var/lib/docker/containers" not in json.dumps(values)


def test_collector_pushes_to_loki(spec):
    config = _collector(spec)["config"]
    assert "Path /var/log/containers/*.log" in config["inputs"]
    assert "Name kubernetes" in config["filters"]
    outputs = config["outputs"]
    assert outputs.count("Name loki") == 2
    assert outputs.count("Host loki.logging.svc") == 2
    assert outputs.count("Port 3100") == 2
    assert outputs.count("Uri /loki/api/v1/push") == 2
    assert "cluster=prod" in outputs
    assert "{{" not in json.dumps(config)  # the chart passes these strings through tpl


def test_collector_follows_the_namespace(production):
    spec = build(production, logging=dict(ON, namespace="logs"))
    assert "Host loki.logs.svc" in _collector(spec)["config"]["outputs"]
    assert "http://loki.logs.svc:3100" in json.dumps(_docs(spec))


def test_collector_has_no_helm_test_pod(spec):
    assert _collector(spec)["testFramework"] == {"enabled": False}


# --- Grafana ---------------------------------------------------------------------------

def test_grafana_gets_loki_as_a_data_source(spec):
    config_map = find(_docs(spec), "ConfigMap", "loki-datasource")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_datasource"] == "1"
    [source] = yaml.safe_load(config_map["data"]["loki.yaml"])["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == ("loki", "http://loki.logging.svc:3100", False)


def test_grafana_may_reach_loki_from_its_namespace(spec):
    docs = _docs(spec)
    egress = find(docs, "NetworkPolicy", "allow-grafana-to-loki")
    assert egress["metadata"]["namespace"] == "monitoring"
    assert egress["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "grafana"}}
    [rule] = egress["spec"]["egress"]
    assert rule["to"][0]["podSelector"] == {"matchLabels": LOKI}
    assert rule["ports"] == [{"protocol": "TCP", "port": 3100}]


@pytest.mark.parametrize("changes", [
    {"monitoring": {"grafana": {"enabled": False}}},
    {"logging": dict(ON, grafana_datasource=False)},
])
def test_no_data_source_without_grafana_or_when_declined(production, changes):
    changes = dict({"logging": dict(ON)}, **changes)
    docs = _docs(build(production, **changes))
    assert not of_kind(docs, "ConfigMap")
    assert "allow-grafana-to-loki" not in names_of(docs, "NetworkPolicy")


def test_without_monitoring_nothing_points_at_it(production):
    spec = build(production, logging=dict(ON))
    spec["components"]["monitoring"]["enabled"] = False
    docs = _docs(spec)
    assert not of_kind(docs, "ConfigMap")
    assert "allow-monitoring" not in names_of(docs, "NetworkPolicy")
    assert "allow-collector-metrics" not in names_of(docs, "NetworkPolicy")
    assert _loki(spec)["monitoring"]["serviceMonitor"]["enabled"] is False
    assert _collector(spec)["serviceMonitor"] == {"enabled": False}


# --- network policies ----------------------------------------------------------------

def test_namespace_starts_from_deny_all_and_dns(spec):
    names = names_of([d for d in _docs(spec) if d["metadata"]["namespace"] == "logging"], "NetworkPolicy")
    assert "default-deny" in names and "allow-dns" in names


def test_collector_may_reach_loki_and_the_api_server_only(spec):
    docs = _docs(spec)
    to_loki = network_policy(docs, "allow-collector-to-loki")
    assert to_loki["podSelector"] == {"matchLabels": COLLECTOR}
    assert to_loki["egress"] == [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name":
                                                                                "logging"}},
                                          "podSelector": {"matchLabels": LOKI}}],
                                  "ports": [{"protocol": "TCP", "port": 3100}]}]
    apiserver = network_policy(docs, "allow-collector-apiserver")
    assert apiserver["podSelector"] == {"matchLabels": COLLECTOR}
    assert {"ipBlock": {"cidr": "192.0.2.10/32"}} in apiserver["egress"][0]["to"]
    egress_policies = [d for d in of_kind(docs, "NetworkPolicy") if d["metadata"]["namespace"] == "logging"
                       and "Egress" in d["spec"]["policyTypes"] and d["spec"].get("egress")
                       and d["spec"]["podSelector"].get("matchLabels") == COLLECTOR]
    assert sorted(d["metadata"]["name"] for d in egress_policies) == ["allow-collector-apiserver",
                                                                      "allow-collector-to-loki"]


def test_loki_takes_pushes_from_the_collector_and_queries_from_monitoring(spec):
    docs = _docs(spec)
    collector = network_policy(docs, "allow-collector")
    assert collector["podSelector"] == {"matchLabels": LOKI}
    assert collector["ingress"][0]["from"][0]["podSelector"] == {"matchLabels": COLLECTOR}
    assert collector["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 3100}]
    monitoring = network_policy(docs, "allow-monitoring")
    assert monitoring["ingress"] == [{"ports": [{"protocol": "TCP", "port": 3100}], "from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]
    metrics = network_policy(docs, "allow-collector-metrics")
    assert metrics["podSelector"] == {"matchLabels": COLLECTOR}
    assert metrics["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 2020}]


def test_loki_reaches_itself_for_its_ring_and_queries(spec):
    policy = network_policy(_docs(spec), "allow-loki-self")
    ports = [p["port"] for p in policy["ingress"][0]["ports"]]
    assert ports == [3100, 9095, 7946]
    assert [p["port"] for p in policy["egress"][0]["ports"]] == ports


# --- checks ------------------------------------------------------------------------------

def test_needs_a_storage_class(production):
    spec = build(production, logging=dict(ON))
    spec["components"]["rook_ceph"]["enabled"] = False
    [message] = check_errors(spec, "logging")
    assert message.startswith("plinth_components.logging.storage_class: got None;")
    assert "rook_ceph" in message


def test_an_explicit_storage_class_is_enough_without_rook(production):
    spec = build(production, logging=dict(ON, storage_class="local-nvme"))
    spec["components"]["rook_ceph"]["enabled"] = False
    assert check_errors(spec, "logging") == []


def test_a_second_replica_is_refused(production):
    errors = spec_errors(production, logging=dict(ON, replicas=2))
    assert [e for e in errors if e.startswith("plinth_components.logging.replicas: got 2;")
            and "one replica" in e]


@pytest.mark.parametrize("retention,rule", [
    ("36h", "whole number of days"),
    ("2weeks", "positive duration"),
])
def test_retention_must_be_whole_days(production, retention, rule):
    errors = spec_errors(production, logging=dict(ON, retention=retention))
    assert [e for e in errors if e.startswith("plinth_components.logging.retention: got %r;" % retention)
            and rule in e], errors


@pytest.mark.parametrize("retention", ["14d", "720h", "2w", "1d24h"])
def test_whole_day_retentions_pass(retention):
    assert logging.whole_days(retention) is None


def test_disabled_logging_is_not_checked(production):
    options(production, "logging").clear()
    spec = build(production, logging={"replicas": 2})
    assert spec["components"]["logging"]["enabled"] is False


# --- the whole tree ----------------------------------------------------------------------

def test_the_rendered_tree_passes_the_secret_scan(spec):
    files = gitops.render(spec)
    assert "infra/loki/values-production.yaml" in files
    assert "infra/fluent-bit/values-production.yaml" in files
    assert secrets.scan_files(files) == []


def test_the_environment_picture_shows_logging(spec):
    readme = gitops.texts(spec)["clusters/production/README.md"]
    assert "component logging, namespace logging" in readme
    assert "loki" in readme and "fluent-bit" in readme

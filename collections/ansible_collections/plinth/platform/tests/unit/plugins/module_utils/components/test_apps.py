# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Business app values, rendered through a real `helm create` chart with real helm."""

from __future__ import absolute_import, annotations, division, print_function

import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils.components import apps
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, find, network_policy, of_kind, spec_errors)

__metaclass__ = type


def helm():
    found = shutil.which("helm") or os.path.join(os.path.dirname(sys.executable), "helm")
    if not os.path.exists(found):
        pytest.fail("helm is missing: `make test` installs it into the virtualenv")
    return found


@pytest.fixture(scope="module")
def chart(tmp_path_factory):
    """The chart layout `helm create` scaffolds, which app values target."""
    root = tmp_path_factory.mktemp("chart")
    subprocess.run([helm(), "create", "app"], cwd=str(root), check=True, capture_output=True)
    return str(root / "app")


def template(chart, tmp_path, values, name="store-api"):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = subprocess.run([helm(), "template", name, chart, "-f", str(path), "--namespace", "store"],
                         check=True, capture_output=True, text=True).stdout
    return dict(((d["kind"], d["metadata"]["name"]), d) for d in yaml.safe_load_all(out) if d)


def app_values(inventory, index=0):
    spec = build(inventory)
    return apps.values(spec, spec["apps"][index])


def test_autoscaled_app_renders_hpa_and_hardened_pods(production, chart, tmp_path):
    objects = template(chart, tmp_path, app_values(production))
    deployment = objects[("Deployment", "store-api-app")]
    hpa = objects[("HorizontalPodAutoscaler", "store-api-app")]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"},
                                      "limits": {"cpu": "1", "memory": "512Mi"}}
    assert pod["nodeSelector"] == {"node.role": "worker"}
    assert objects[("Service", "store-api-app")]["spec"]["ports"][0]["port"] == 8080
    ingress = objects[("Ingress", "store-api-app")]
    assert ingress["spec"]["ingressClassName"] == "kong"
    assert ingress["spec"]["rules"][0]["host"] == "store.example.com"


def test_fixed_replicas_without_autoscaling(production, chart, tmp_path):
    production[0]["plinth_apps"][1].pop("autoscaling")
    objects = template(chart, tmp_path, app_values(production, 1), "payment-service")
    assert objects[("Deployment", "payment-service-app")]["spec"]["replicas"] == 2
    assert ("HorizontalPodAutoscaler", "payment-service-app") not in objects
    assert ("Ingress", "payment-service-app") not in objects


def test_tainted_pool_adds_tolerations(production, chart, tmp_path):
    production[0]["plinth_apps"][0]["pool"] = "gateway"
    objects = template(chart, tmp_path, app_values(production))
    pod = objects[("Deployment", "store-api-app")]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"node.kong.gateway": "true"}
    assert pod["tolerations"] == [{"key": "node.kong.gateway", "operator": "Equal", "value": "true",
                                   "effect": "NoSchedule"}]


def test_app_values_are_merged_last(production):
    production[0]["plinth_apps"][0]["values"] = {"securityContext": {"runAsUser": 20000}, "extra": [1]}
    values = app_values(production)
    assert values["securityContext"]["runAsUser"] == 20000
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["extra"] == [1]


# --- metrics ---------------------------------------------------------------------------

def app_manifests(inventory, index=0, **components):
    spec = build(inventory, **components)
    return apps.manifests(spec, spec["apps"][index], True)


def with_metrics(inventory, **metrics):
    inventory[0]["plinth_apps"][0]["metrics"] = metrics
    return inventory


def test_no_metrics_no_service_or_monitor(production):
    production[0]["plinth_apps"][0].pop("metrics", None)
    docs = app_manifests(production)
    assert not of_kind(docs, "Service") and not of_kind(docs, "ServiceMonitor")


def test_metrics_get_a_service_and_a_monitor_of_their_own(production):
    docs = app_manifests(with_metrics(production, port=9090))
    service = find(docs, "Service", "store-api-metrics")
    assert service["metadata"]["namespace"] == "store"
    assert service["spec"]["selector"] == {"app.kubernetes.io/instance": "store-api"}
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"}]
    monitor = find(docs, "ServiceMonitor", "store-api-metrics")["spec"]
    assert all(service["metadata"]["labels"][k] == v for k, v in monitor["selector"]["matchLabels"].items())
    assert monitor["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"
    assert monitor["namespaceSelector"] == {"matchNames": ["store"]}
    assert monitor["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]


def test_metrics_path_and_interval_are_options(production):
    docs = app_manifests(with_metrics(production, port=9090, path="/internal/metrics", interval="1m"))
    endpoint = find(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    assert (endpoint["path"], endpoint["interval"]) == ("/internal/metrics", "1m")


def test_prometheus_is_let_in_on_a_separate_metrics_port(production):
    docs = app_manifests(with_metrics(production, port=9090))
    rules = network_policy(docs, "store-api-ingress")["ingress"]
    assert rules[0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rules[1] == {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
                        "ports": [{"protocol": "TCP", "port": 9090}]}


def test_metrics_on_the_apps_own_port_need_no_further_rule(production):
    docs = app_manifests(with_metrics(production, port=8080))
    rules = network_policy(docs, "store-api-ingress")["ingress"]
    assert len(rules) == 1 and rules[0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert find(docs, "Service", "store-api-metrics")["spec"]["ports"][0]["port"] == 8080


def test_metrics_are_ignored_without_monitoring(production):
    docs = app_manifests(with_metrics(production, port=9090), monitoring={"enabled": False})
    assert not of_kind(docs, "Service") and not of_kind(docs, "ServiceMonitor")
    assert "9090" not in str(docs)


@pytest.mark.parametrize("metrics, rule", [
    ({"port": 0}, "must be at least 1"),
    ({"port": 70000}, "must be at most 65535"),
    ({"port": 9090, "interval": "often"}, "positive duration"),
    ({"path": "/metrics"}, "is required"),
])
def test_bad_metrics_are_named(production, metrics, rule):
    errors = spec_errors(with_metrics(production, **metrics))
    assert any(e.startswith("plinth_apps[0].metrics.") and rule in e for e in errors), errors


@pytest.mark.parametrize("path, rule", [
    ("metrics", "starting with /"),
    ("/metrics?format=text", "plain path"),
])
def test_metrics_path_must_be_a_plain_http_path(production, path, rule):
    errors = spec_errors(with_metrics(production, port=9090, path=path))
    assert len(errors) == 1 and errors[0].startswith("plinth_apps[0].metrics.path: got %r" % path)
    assert rule in errors[0]

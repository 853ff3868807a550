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
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import build

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

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kubelet-csr-approver: pinned to the inventory's hosts; metrics-server depends on it."""

from __future__ import absolute_import, annotations, division, print_function

import re

from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, manifests_of, names_of, network_policy, spec_errors, values_of)

__metaclass__ = type


def test_only_the_inventory_hosts_and_their_addresses_are_approved(production):
    spec = build(production)
    values = values_of(spec, "kubelet_csr_approver")
    pattern = re.compile(values["providerRegex"])
    for host in spec["hosts"]:
        assert pattern.match(host)
    for stranger in ("worker-10", "xworker-1", "worker-1.evil", "cp-1x"):
        assert not pattern.match(stranger)
    assert sorted(values["providerIpPrefixes"]) == sorted("%s/32" % h["address"] for h in spec["hosts"].values())
    assert values["bypassDnsResolution"] is True
    assert values["leaderElection"] is True and values["replicas"] == 2
    assert values["nodeSelector"] == {"node.role": "worker"}


def test_host_names_are_escaped(production):
    production[1]["workers"].append("w.1")
    production[1]["k8s_cluster"].append("w.1")
    production[2]["w.1"] = {"ansible_host": "192.0.2.44"}
    assert not re.match(values_of(build(production), "kubelet_csr_approver")["providerRegex"], "wx1")


def test_metrics_server_needs_signed_kubelet_certificates(production):
    assert spec_errors(production, kubelet_csr_approver={"enabled": False}) == [
        "plinth_components.metrics_server.kubelet_insecure_tls: got False; metrics-server verifies kubelet "
        "serving certificates, which are signed only when their requests are approved: enable "
        "plinth_components.kubelet_csr_approver (or accept unverified kubelets with kubelet_insecure_tls: true)"]
    build(production, kubelet_csr_approver={"enabled": False}, metrics_server={"kubelet_insecure_tls": True})


def test_monitor_follows_monitoring(production):
    assert values_of(build(production), "kubelet_csr_approver")["metrics"] == {
        "enable": True, "serviceMonitor": {"enabled": True}}
    assert "metrics" not in values_of(build(production, monitoring={"enabled": False}), "kubelet_csr_approver")


def test_network_policies_deny_all_but_the_api_and_prometheus(production):
    docs = manifests_of(build(production), "kubelet_csr_approver")
    assert names_of(docs, "NetworkPolicy") == ["allow-apiserver", "allow-dns", "allow-metrics", "default-deny"]
    assert all(d["metadata"]["namespace"] == "kubelet-csr-approver" for d in docs)
    metrics = network_policy(docs, "allow-metrics")
    assert metrics["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "kubelet-csr-approver",
                                                      "app.kubernetes.io/instance": "kubelet-csr-approver"}}
    assert metrics["ingress"] == [{
        "ports": [{"protocol": "TCP", "port": 8080}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]}]
    docs = manifests_of(build(production, monitoring={"enabled": False}), "kubelet_csr_approver")
    assert "allow-metrics" not in names_of(docs, "NetworkPolicy")

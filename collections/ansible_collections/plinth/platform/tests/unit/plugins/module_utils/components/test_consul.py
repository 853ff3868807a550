# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Consul: a server-only cluster on the worker pool, on Ceph volumes, fenced by NetworkPolicies."""

from __future__ import absolute_import, annotations, division, print_function

import json

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils.components import consul, vault
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    DEDICATED, build, check_errors, find, manifests_of, names_of, network_policy, of_kind, options, spec_errors,
    taint_workers, values_of)

__metaclass__ = type

SERVER = {"app": "consul", "release": "consul", "component": "server"}


@pytest.fixture
def values(production):
    return values_of(build(production), "consul")


def test_production_runs_three_servers_on_ceph_volumes(values):
    server = values["server"]
    assert server["replicas"] == 3
    assert server["storageClass"] == "rook-ceph-block"
    assert server["storage"] == "10Gi"


def test_servers_are_placed_on_the_worker_pool(values):
    # The chart passes these keys through tpl: they are YAML text, not maps.
    assert yaml.safe_load(values["server"]["nodeSelector"]) == {"node.role": "worker"}
    assert values["server"]["tolerations"] == ""


def test_servers_keep_a_disruption_budget_of_one(values):
    assert values["server"]["disruptionBudget"] == {"enabled": True, "maxUnavailable": 1}


def test_only_the_servers_are_deployed(values):
    assert values["client"] == {"enabled": False}
    assert values["connectInject"] == {"enabled": False}
    assert values["dns"] == {"enabled": False}
    assert values["syncCatalog"] == {"enabled": False}
    assert values["server"]["connect"] is False
    assert values["ui"]["enabled"] is False


def test_production_defaults_acls_off_and_a_generated_gossip_key(values):
    assert values["global"]["acls"]["manageSystemACLs"] is False
    assert values["global"]["gossipEncryption"] == {"autoGenerate": True}
    assert values["global"]["tls"] == {"enabled": False}


def test_server_service_name_is_what_vault_points_at(production):
    spec = build(production)
    assert values_of(spec, "consul")["global"]["name"] == "consul"
    assert consul.server_address(spec) == "consul-server.consul.svc:8500"


def test_server_address_follows_the_namespace(production):
    spec = build(production, consul={"namespace": "kv"})
    assert consul.server_address(spec) == "consul-server.kv.svc:8500"


def test_tainted_pool_gets_tolerations_and_its_labels(production):
    inventory = taint_workers(production, labels={"role": "platform"})
    values = values_of(build(inventory, consul={"gossip_encryption": "none"}), "consul")
    assert yaml.safe_load(values["server"]["nodeSelector"]) == {"role": "platform"}
    assert yaml.safe_load(values["server"]["tolerations"]) == [dict(DEDICATED, operator="Equal")]


def test_acl_jobs_are_placed_like_the_servers(production):
    spec = build(taint_workers(production), consul={"gossip_encryption": "none", "acls": True})
    acls = values_of(spec, "consul")["global"]["acls"]
    assert acls["manageSystemACLs"] is True
    assert yaml.safe_load(acls["nodeSelector"]) == {"node.role": "worker"}
    assert yaml.safe_load(acls["tolerations"]) == [dict(DEDICATED, operator="Equal")]


def test_storage_class_override(production):
    values = values_of(build(production, consul={"storage_class": "fast-nvme"}), "consul")
    assert values["server"]["storageClass"] == "fast-nvme"


def test_storage_class_is_cluster_default_without_rook(production):
    spec = build(production)
    spec["components"]["rook_ceph"]["enabled"] = False
    assert values_of(spec, "consul")["server"]["storageClass"] is None


def test_single_server_has_no_disruption_budget(production):
    values = values_of(build(production, consul={"replicas": 1}), "consul")
    assert values["server"]["replicas"] == 1
    assert values["server"]["disruptionBudget"]["enabled"] is False


def test_ui_is_an_explicit_choice(production):
    values = values_of(build(production, consul={"ui": True}), "consul")
    assert values["ui"] == {"enabled": True, "service": {"enabled": True, "type": "ClusterIP"},
                            "metrics": {"enabled": False}}


def test_more_servers_than_workers_is_rejected(production):
    assert spec_errors(production, consul={"replicas": 5}) == [
        "plinth_components.consul.replicas: got 5; 5 Consul servers need 5 hosts in pool 'worker' "
        "(group workers has 3)"]


def test_even_server_count_is_rejected(production):
    production[1]["workers"] = production[1]["workers"] + ["worker-4"]
    production[1]["k8s_cluster"].append("worker-4")
    assert spec_errors(production, consul={"replicas": 2}) == [
        "plinth_components.consul.replicas: got 2; Consul servers form a Raft quorum: use an odd number "
        "(an even one adds no fault tolerance)"]


def test_generated_gossip_key_is_rejected_on_a_tainted_pool(production):
    assert spec_errors(taint_workers(production)) == [
        "plinth_components.consul.gossip_encryption: got 'generate'; the chart's key-generation Job takes "
        "no tolerations, so it cannot run on the tainted pool 'worker': use 'vault' or 'none'"]


def test_unknown_gossip_mode_is_rejected(production):
    assert spec_errors(production, consul={"gossip_encryption": "yes"}) == [
        "plinth_components.consul.gossip_encryption: got 'yes'; must be one of 'generate', 'vault', 'none'"]


def test_gossip_key_from_vault_is_an_external_secret_reference(production):
    spec = build(production, consul={"gossip_encryption": "vault",
                                     "gossip_key_vault_path": "platform/consul/serf"})
    values = values_of(spec, "consul")
    assert values["global"]["gossipEncryption"] == {
        "autoGenerate": False, "secretName": "consul-gossip-key", "secretKey": "key"}
    secret = find(manifests_of(spec, "consul"), "ExternalSecret")
    assert secret["metadata"]["namespace"] == "consul"
    assert secret["spec"]["target"]["name"] == "consul-gossip-key"
    assert secret["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "vault"}
    assert secret["spec"]["data"] == [
        {"secretKey": "key", "remoteRef": {"key": "platform/consul/serf", "property": "key"}}]
    assert "SkipDryRunOnMissingResource=true" in secret["metadata"]["annotations"][
        "argocd.argoproj.io/sync-options"]


def test_gossip_key_from_vault_needs_external_secrets(production):
    # Many components need External Secrets; switch it off in the built spec only.
    spec = build(production, consul={"gossip_encryption": "vault"})
    spec["components"]["external_secrets"]["enabled"] = False
    assert check_errors(spec, "consul") == [
        "plinth_components.consul.gossip_encryption: got 'vault'; "
        "needs plinth_components.external_secrets.enabled: true"]


def test_no_secret_is_written_by_default(production):
    options(production, "consul").pop("snapshot", None)
    kinds = set(d["kind"] for d in manifests_of(build(production), "consul"))
    assert kinds == {"NetworkPolicy", "PodMonitor"}


def test_network_policies_deny_by_default_and_allow_dns(production):
    docs = manifests_of(build(production), "consul")
    assert network_policy(docs, "default-deny") == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert network_policy(docs, "allow-dns")["policyTypes"] == ["Egress"]
    assert all(d["metadata"]["namespace"] == "consul" for d in docs)


def test_servers_talk_raft_and_gossip_only_to_each_other(production):
    policy = network_policy(manifests_of(build(production), "consul"), "allow-server-cluster")
    assert policy["podSelector"] == {"matchLabels": SERVER}
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "consul"}},
              "podSelector": {"matchLabels": SERVER}}]
    expected = set([(8300, "TCP"), (8301, "TCP"), (8301, "UDP"), (8302, "TCP"), (8302, "UDP")])
    [egress] = policy["egress"]
    assert egress["to"] == peers
    assert set((p["port"], p["protocol"]) for p in egress["ports"]) == expected
    cluster = [rule for rule in policy["ingress"] if rule["from"] == peers]
    assert set((p["port"], p["protocol"]) for p in cluster[0]["ports"]) == expected


def test_vault_reaches_only_the_http_api(production):
    policy = network_policy(manifests_of(build(production), "consul"), "allow-vault")
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8500}]
    assert rule["from"] == [{
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "vault"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "vault", "component": "server"}}}]
    # The selector matches the pods Vault's chart labels.
    assert set(rule["from"][0]["podSelector"]["matchLabels"].items()) <= set(vault.server_labels().items())


def test_no_vault_policy_without_vault(production):
    spec = build(production)
    spec["components"]["vault"]["enabled"] = False
    names = [d["metadata"]["name"] for d in manifests_of(spec, "consul")]
    assert "allow-vault" not in names


def test_only_servers_and_chart_jobs_reach_the_api_server(production):
    policy = network_policy(manifests_of(build(production), "consul"), "allow-apiserver")
    [expression] = policy["podSelector"]["matchExpressions"]
    assert expression["key"] == "component"
    assert set(expression["values"]) == {"server", "gossip-encryption-autogenerate", "server-acl-init",
                                         "server-acl-init-cleanup"}
    [rule] = policy["egress"]
    assert {"ipBlock": {"cidr": "192.0.2.10/32"}} in rule["to"]


def test_generated_documents_share_no_objects(production):
    spec = build(production, consul={"gossip_encryption": "vault", "acls": True})
    text = yaml.safe_dump_all(manifests_of(spec, "consul")) + yaml.safe_dump(values_of(spec, "consul"))
    assert "&id" not in text


def test_json_text_values_are_deterministic(values):
    assert values["server"]["nodeSelector"] == json.dumps({"node.role": "worker"}, sort_keys=True)


# --- metrics ----------------------------------------------------------------------------

PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def without_monitoring(spec):
    spec["components"]["monitoring"]["enabled"] = False
    return spec


def test_servers_serve_prometheus_metrics_with_monitoring(values):
    # The chart renders telemetry.prometheus_retention_time only with both switches on.
    assert values["global"]["metrics"] == {"enabled": True, "enableAgentMetrics": True,
                                           "agentMetricsRetentionTime": "1m", "disableAgentHostName": True}


def test_pod_monitor_scrapes_the_servers_http_port(production):
    monitor = find(manifests_of(build(production), "consul"), "PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "consul"
    assert monitor["spec"]["selector"] == {"matchLabels": SERVER}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/v1/agent/metrics"
    assert endpoint["params"] == {"format": ["prometheus"]}
    assert "authorization" not in endpoint


def test_pod_monitor_sends_a_token_from_a_secret_with_acls(production):
    spec = build(production, consul={"acls": True, "metrics_token_secret_name": "prom-consul"})
    [endpoint] = find(manifests_of(spec, "consul"), "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert endpoint["authorization"] == {"type": "Bearer", "credentials": {"name": "prom-consul", "key": "token"}}


def test_prometheus_reaches_only_the_servers_http_port(production):
    policy = network_policy(manifests_of(build(production), "consul"), "allow-prometheus")
    assert policy["podSelector"] == {"matchLabels": SERVER}
    assert policy["ingress"] == [{"from": [PROMETHEUS], "ports": [{"protocol": "TCP", "port": 8500}]}]


def test_prometheus_policy_follows_the_monitoring_namespace(production):
    policy = network_policy(manifests_of(build(production, monitoring={"namespace": "observability"}), "consul"),
                            "allow-prometheus")
    [rule] = policy["ingress"]
    assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "observability"}


def test_no_metrics_without_monitoring(production):
    spec = without_monitoring(build(production))
    assert values_of(spec, "consul")["global"]["metrics"] == {"enabled": False}
    docs = manifests_of(spec, "consul")
    assert not of_kind(docs, "PodMonitor")
    assert "allow-prometheus" not in names_of(docs, "NetworkPolicy")


# --- snapshots --------------------------------------------------------------------------

SNAPSHOT = {"enabled": True, "schedule": "30 3 * * *", "retention": 5}


@pytest.fixture
def snapshot(production):
    spec = build(production, consul={"snapshot": dict(SNAPSHOT)})
    return manifests_of(spec, "consul")


def pod_of(docs):
    return find(docs, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]


def test_no_snapshot_by_default(production):
    options(production, "consul").pop("snapshot", None)
    assert build(production)["components"]["consul"]["snapshot"] == {
        "enabled": False, "schedule": "0 2 * * *", "retention": 7, "storage": "5Gi", "storage_class": None,
        "image": None, "token_secret_name": None}
    docs = manifests_of(build(production), "consul")
    assert not of_kind(docs, "CronJob") and not of_kind(docs, "PersistentVolumeClaim")


def test_snapshot_cron_job_runs_one_at_a_time_on_schedule(snapshot):
    cron = find(snapshot, "CronJob", "consul-snapshot")
    assert cron["metadata"]["namespace"] == "consul"
    spec = cron["spec"]
    assert spec["schedule"] == "30 3 * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 3


def test_snapshot_volume_is_on_ceph_and_never_pruned(snapshot):
    claim = find(snapshot, "PersistentVolumeClaim", "consul-snapshots")
    assert claim["spec"]["storageClassName"] == "rook-ceph-block"
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert claim["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false"
    [volume] = [v for v in pod_of(snapshot)["spec"]["volumes"] if v["name"] == "snapshots"]
    assert volume["persistentVolumeClaim"]["claimName"] == "consul-snapshots"


def test_snapshot_storage_class_override(production):
    docs = manifests_of(build(production, consul={"snapshot": dict(SNAPSHOT, storage_class="cephfs")}), "consul")
    assert find(docs, "PersistentVolumeClaim")["spec"]["storageClassName"] == "cephfs"


def test_snapshot_saves_to_the_servers_and_keeps_the_newest(snapshot):
    [container] = pod_of(snapshot)["spec"]["containers"]
    assert container["image"] == consul.CHART_IMAGE == "hashicorp/consul:2.0.3"
    script = container["command"][-1]
    assert 'consul snapshot save "$file.partial"' in script
    assert "tail -n +6" in script
    env = dict((e["name"], e.get("value")) for e in container["env"])
    assert env["CONSUL_HTTP_ADDR"] == "http://consul-server.consul.svc:8500"
    assert "CONSUL_HTTP_TOKEN" not in env


def test_snapshot_image_override(production):
    docs = manifests_of(build(production, consul={"snapshot": dict(SNAPSHOT, image="mirror.example/consul:2.0.3")}),
                        "consul")
    assert pod_of(docs)["spec"]["containers"][0]["image"] == "mirror.example/consul:2.0.3"


def test_snapshot_pod_meets_the_restricted_level(snapshot):
    assert consul.COMPONENT.pod_security == "restricted"
    pod = pod_of(snapshot)["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = pod["containers"]
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    mounts = dict((m["mountPath"], m["name"]) for m in container["volumeMounts"])
    assert mounts["/tmp"] == "tmp"
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]


def test_snapshot_pod_is_placed_on_the_pool(production):
    spec = build(taint_workers(production), consul={"gossip_encryption": "none", "snapshot": dict(SNAPSHOT)})
    pod = pod_of(manifests_of(spec, "consul"))["spec"]
    assert pod["nodeSelector"] == {"node.role": "worker"}
    assert pod["tolerations"] == [dict(DEDICATED, operator="Equal")]


def test_snapshot_token_is_the_bootstrap_secret_with_acls(production):
    spec = build(production, consul={"acls": True, "snapshot": dict(SNAPSHOT)})
    [container] = pod_of(manifests_of(spec, "consul"))["spec"]["containers"]
    [token] = [e for e in container["env"] if e["name"] == "CONSUL_HTTP_TOKEN"]
    assert token["valueFrom"] == {"secretKeyRef": {"name": "consul-bootstrap-acl-token", "key": "token"}}


def test_snapshot_token_secret_override(production):
    spec = build(production, consul={"acls": True, "snapshot": dict(SNAPSHOT, token_secret_name="consul-backup")})
    [container] = pod_of(manifests_of(spec, "consul"))["spec"]["containers"]
    [token] = [e for e in container["env"] if e["name"] == "CONSUL_HTTP_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"]["name"] == "consul-backup"


def test_snapshot_pods_reach_the_servers_http_port(snapshot):
    # Both policies select every pod of the namespace, the snapshot pods included.
    local = network_policy(snapshot, "allow-local-http")
    assert local["podSelector"] == {}
    [egress] = local["egress"]
    assert egress["ports"] == [{"protocol": "TCP", "port": 8500}]
    assert egress["to"][0]["podSelector"] == {"matchLabels": SERVER}
    ingress = network_policy(snapshot, "allow-server-cluster")["ingress"]
    assert {"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 8500}]} in ingress
    # ...and no policy lets them reach the Kubernetes API.
    labels = pod_of(snapshot)["metadata"]["labels"]
    assert "component" not in labels


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/30 * * * 1-5", "@daily"])
def test_cron_schedules_are_accepted(production, schedule):
    spec = build(production, consul={"snapshot": dict(SNAPSHOT, schedule=schedule)})
    assert find(manifests_of(spec, "consul"), "CronJob")["spec"]["schedule"] == schedule


def test_bad_schedule_is_rejected(production):
    assert spec_errors(production, consul={"snapshot": dict(SNAPSHOT, schedule="daily")}) == [
        "plinth_components.consul.snapshot.schedule: got 'daily'; must be a cron schedule: five fields "
        "(minute hour day month weekday) or @daily, @hourly..."]


def test_retention_of_zero_is_rejected(production):
    [error] = spec_errors(production, consul={"snapshot": dict(SNAPSHOT, retention=0)})
    assert error.startswith("plinth_components.consul.snapshot.retention: got 0;")


def test_snapshot_documents_share_no_objects(production):
    spec = build(taint_workers(production), consul={"gossip_encryption": "none", "acls": True,
                                                    "snapshot": dict(SNAPSHOT)})
    assert "&id" not in yaml.safe_dump_all(manifests_of(spec, "consul"))

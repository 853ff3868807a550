# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Kong Gateway: placement, database wiring, secrets, network policies and cross-checks."""

from __future__ import absolute_import, annotations, division, print_function

import copy
import datetime
import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import cnpg_backup
from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory
from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.components.helpers import (
    build, find, manifests_of, of_kind, options, spec_errors, strings, values_of)

__metaclass__ = type

WAVE = "argocd.argoproj.io/sync-wave"


def _values(inventory, **changes):
    return values_of(build(inventory, kong=changes), "kong")


def _manifests(inventory, **changes):
    return manifests_of(build(inventory, kong=changes), "kong")


# --- placement and HA -------------------------------------------------------------

def test_example_inventories_fill_the_gateway_pool(example_env):
    spec = build(load_inventory(example_env))
    values = values_of(spec, "kong")
    hosts = spec["node_pools"]["gateway"]["hosts"]
    assert values["replicaCount"] == spec["components"]["kong"]["replicas"] <= len(hosts)
    assert values["env"]["database"] == "postgres"
    cluster = find(manifests_of(spec, "kong"), "Cluster")
    assert cluster["spec"]["instances"] <= len(spec["node_pools"]["worker"]["hosts"])


def test_gateway_pods_run_only_on_the_gateway_pool(production):
    values = _values(production)
    assert values["replicaCount"] == 3
    assert values["nodeSelector"] == {"node.kong.gateway": "true"}
    assert values["tolerations"] == [
        {"key": "node.kong.gateway", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]


def test_gateway_pods_spread_one_per_host(production):
    values = _values(production)
    [spread] = values["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["maxSkew"] == 1
    # The chart's selector labels of the proxy pods, not those of the migration Jobs.
    assert spread["labelSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "kong", "app.kubernetes.io/instance": "kong",
        "app.kubernetes.io/component": "app"}
    # The chart hands `affinity` to the migration Jobs as well: no anti-affinity there.
    assert "podAntiAffinity" not in (values.get("affinity") or {})


def test_pool_labels_and_taints_follow_the_inventory(production):
    variables = production[0]
    variables["plinth_node_pools"]["gateway"]["labels"] = {"edge": "yes", "zone": "dmz"}
    variables["plinth_node_pools"]["gateway"]["taints"] = [
        {"key": "edge", "value": "yes", "effect": "NoSchedule"},
        {"key": "dmz", "value": "", "effect": "NoExecute"},
    ]
    values = _values(production)
    assert values["nodeSelector"] == {"edge": "yes", "zone": "dmz"}
    assert values["tolerations"] == [
        {"key": "edge", "operator": "Equal", "value": "yes", "effect": "NoSchedule"},
        {"key": "dmz", "operator": "Equal", "value": "", "effect": "NoExecute"},
    ]


def test_pod_disruption_budget_keeps_a_majority(production):
    assert _values(production)["podDisruptionBudget"] == {"enabled": True, "minAvailable": 2}


@pytest.mark.parametrize("replicas, budget", [
    (2, {"enabled": True, "minAvailable": 1}),
    # The chart fails to render a budget for a single replica.
    (1, {"enabled": False}),
])
def test_replicas_and_budget_follow_the_inventory(production, replicas, budget):
    values = _values(production, replicas=replicas)
    assert values["replicaCount"] == replicas
    assert values["podDisruptionBudget"] == budget


def test_migrations_run_with_the_gateway_placement(production):
    values = _values(production)
    # The chart's migration Jobs take nodeSelector/tolerations from the top-level keys.
    assert values["migrations"]["preUpgrade"] is True
    assert values["migrations"]["postUpgrade"] is True
    assert values["nodeSelector"] and values["tolerations"]


def test_runs_non_root_with_a_read_only_root_filesystem(production):
    values = _values(production)
    container = values["containerSecurityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["runAsNonRoot"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert values["securityContext"]["runAsNonRoot"] is True


def test_ingress_controller_is_on_and_admin_api_stays_private(production):
    values = _values(production)
    controller = values["ingressController"]
    assert controller["enabled"] is True
    assert controller["ingressClass"] == "kong"
    assert values["admin"]["enabled"] is False
    assert values["manager"]["enabled"] is False


LB_POOL = {"load_balancer": {"addresses": ["192.0.2.200/29"]}}


@pytest.mark.parametrize("service_type, policy", [("LoadBalancer", "Local"), ("NodePort", "Local"),
                                                  ("ClusterIP", None)])
def test_proxy_service_type(production, service_type, policy):
    proxy = values_of(build(production, kong={"proxy_service_type": service_type}, cilium=LB_POOL), "kong")["proxy"]
    assert proxy["type"] == service_type
    assert proxy.get("externalTrafficPolicy") == policy


def test_proxy_needs_no_external_load_balancer_by_default(production):
    # A LoadBalancer Service without an address stays Progressing in Argo CD and holds every later wave.
    assert _values(production)["proxy"] == {"enabled": True, "type": "ClusterIP"}


def test_load_balancer_proxy_needs_an_address_pool(production):
    assert spec_errors(production, kong={"proxy_service_type": "LoadBalancer"}) == [
        "plinth_components.kong.proxy_service_type: got 'LoadBalancer'; a LoadBalancer Service gets an address "
        "on bare metal only from an address pool: set plinth_components.cilium.load_balancer.addresses, or use "
        "ClusterIP (the tunnel's way in) or NodePort"]


def test_load_balancer_proxy_beside_another_cni_is_the_user_s_choice(production):
    spec = build(production, kong={"proxy_service_type": "LoadBalancer"}, cilium={"enabled": False})
    assert values_of(spec, "kong")["proxy"]["type"] == "LoadBalancer"


# --- database: CloudNativePG (default) ------------------------------------------------

def test_kong_uses_postgres_from_cloudnative_pg(production):
    env = _values(production)["env"]
    assert env["database"] == "postgres"
    assert env["pg_host"] == "kong-postgres-rw.kong.svc"
    assert env["pg_port"] == 5432
    assert env["pg_user"] == "kong"
    assert env["pg_database"] == "kong"
    assert env["pg_password"] == {"valueFrom": {"secretKeyRef": {"name": "kong-database", "key": "password"}}}


def test_postgres_cluster_is_rendered_on_the_worker_pool_with_ceph_storage(production):
    docs = _manifests(production)
    cluster = find(docs, "Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["metadata"]["namespace"] == "kong"
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["storage"]["storageClass"] == "rook-ceph-block"
    assert spec["storage"]["size"] == "10Gi"
    assert spec["affinity"]["nodeSelector"] == {"node.role": "worker"}
    assert spec["affinity"]["podAntiAffinityType"] == "required"
    assert spec["affinity"]["topologyKey"] == "kubernetes.io/hostname"
    assert "tolerations" not in spec["affinity"]          # the worker pool has no taints
    assert spec["bootstrap"]["initdb"] == {"database": "kong", "owner": "kong",
                                           "secret": {"name": "kong-database"}}


def test_postgres_cluster_options(production):
    options(production, "kong")["database"].update({
        "cluster_name": "gw-db", "instances": 2, "storage_size": "20Gi", "storage_class": "fast",
        "name": "gateway", "user": "gateway", "image": "ghcr.io/cloudnative-pg/postgresql:17.5",
        "pool": "storage"})
    spec = build(production)
    cluster = find(manifests_of(spec, "kong"), "Cluster", "gw-db")["spec"]
    assert cluster["instances"] == 2
    assert cluster["storage"] == {"size": "20Gi", "storageClass": "fast"}
    assert cluster["imageName"] == "ghcr.io/cloudnative-pg/postgresql:17.5"
    assert cluster["bootstrap"]["initdb"]["owner"] == "gateway"
    assert cluster["affinity"]["nodeSelector"] == {"node.ceph.storage": "true"}
    assert cluster["affinity"]["tolerations"] == [
        {"key": "node.ceph.storage", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    env = values_of(spec, "kong")["env"]
    assert env["pg_host"] == "gw-db-rw.kong.svc"
    assert env["pg_user"] == "gateway"


def test_storage_class_falls_back_to_the_cluster_default_without_rook(production):
    options(production, "logging").clear()  # Loki needs a StorageClass without Rook
    cluster = find(manifests_of(build(production, rook_ceph={"enabled": False}), "kong"), "Cluster")
    assert "storageClass" not in cluster["spec"]["storage"]


def test_password_comes_from_vault_as_a_basic_auth_secret(production):
    options(production, "kong")["database"]["vault_path"] = "secret/gateway/db"
    secret = find(_manifests(production), "ExternalSecret", "kong-database")
    spec = secret["spec"]
    assert spec["target"]["name"] == "kong-database"
    assert spec["target"]["template"]["type"] == "kubernetes.io/basic-auth"
    assert spec["target"]["template"]["data"]["username"] == "kong"
    assert spec["data"] == [{"secretKey": "password",
                             "remoteRef": {"key": "secret/gateway/db", "property": "password"}}]


def test_no_secret_value_is_written(production):
    values = _values(production)
    docs = _manifests(production)
    for text in list(strings(values)) + list(strings(docs)):
        assert "BEGIN" not in text and "PRIVATE" not in text
    secret = find(docs, "ExternalSecret")
    # Only a template reference to the synced value, never the value.
    assert secret["spec"]["target"]["template"]["data"]["password"] == "{{ .password }}"
    assert "value" not in values["env"]["pg_password"]


def test_sync_waves_put_secret_and_database_before_the_chart(production):
    docs = _manifests(production)
    wave = dict(((d["kind"], d["metadata"]["name"]), int(d["metadata"]["annotations"][WAVE]))
                for d in docs if WAVE in (d["metadata"].get("annotations") or {}))
    secret = wave[("ExternalSecret", "kong-database")]
    database = wave[("Cluster", "kong-postgres")]
    policies = [w for (kind, _name), w in wave.items() if kind == "NetworkPolicy"]
    # The chart's Deployment and migration Jobs sit at wave 0.
    assert max(policies) < secret < database < 0
    assert len(policies) == len(of_kind(docs, "NetworkPolicy"))


# --- database: external ------------------------------------------------------------

def test_external_database(production):
    database = {"mode": "external", "host": "db.example.com", "port": 6432, "name": "gw", "user": "gw_user",
                "ssl": False}
    spec = build(production, kong={"database": database})
    env = values_of(spec, "kong")["env"]
    assert env["pg_host"] == "db.example.com"
    assert env["pg_port"] == 6432
    assert env["pg_database"] == "gw"
    assert env["pg_user"] == "gw_user"
    assert env["pg_ssl"] == "off"
    docs = manifests_of(spec, "kong")
    assert not of_kind(docs, "Cluster")
    assert not of_kind(docs, "PodMonitor")
    assert find(docs, "ExternalSecret")["spec"]["target"]["template"]["data"]["username"] == "gw_user"
    names = [d["metadata"]["name"] for d in of_kind(docs, "NetworkPolicy")]
    assert not [n for n in names if "postgres" in n]
    egress = find(docs, "NetworkPolicy", "allow-to-database")["spec"]["egress"][0]
    # A DNS name cannot be pinned: only the port is restricted.
    assert egress["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    assert egress["ports"] == [{"protocol": "TCP", "port": 6432}]


@pytest.mark.parametrize("host, network, cidr", [
    ("198.51.100.7", None, "198.51.100.7/32"),
    ("db.example.com", "198.51.100.0/24", "198.51.100.0/24"),
])
def test_external_database_egress_is_narrowed(production, host, network, cidr):
    docs = _manifests(production, database={"mode": "external", "host": host, "network": network})
    egress = find(docs, "NetworkPolicy", "allow-to-database")["spec"]["egress"][0]
    assert egress["to"] == [{"ipBlock": {"cidr": cidr}}]


def test_external_mode_does_not_need_cloudnative_pg(production):
    spec = build(production, kong={"database": {"mode": "external", "host": "192.0.2.50"}},
                 cloudnative_pg={"enabled": False})
    assert spec["components"]["kong"]["database"]["mode"] == "external"
    assert not of_kind(manifests_of(spec, "kong"), "Cluster"), "no CloudNativePG Cluster for an external database"


# --- network policies -----------------------------------------------------------------

def test_namespace_is_default_deny_with_the_needed_openings(production):
    docs = of_kind(_manifests(production), "NetworkPolicy")
    names = set(d["metadata"]["name"] for d in docs)
    assert {"default-deny", "allow-dns", "allow-apiserver", "allow-proxy"} <= names
    assert all(d["metadata"]["namespace"] == "kong" for d in docs)
    deny = find(docs, "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and sorted(deny["policyTypes"]) == ["Egress", "Ingress"]


def test_proxy_is_open_to_everyone_on_its_ports_only(production):
    proxy = find(_manifests(production), "NetworkPolicy", "allow-proxy")["spec"]
    assert proxy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "app"
    [rule] = proxy["ingress"]
    assert "from" not in rule
    assert sorted(p["port"] for p in rule["ports"]) == [8000, 8443]


def test_kong_reaches_postgres_and_the_operator_reaches_the_instances(production):
    docs = _manifests(production)
    to_db = find(docs, "NetworkPolicy", "allow-kong-to-postgres")["spec"]
    # Migration Jobs too: no component label in the selector.
    assert to_db["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "kong",
                                                   "app.kubernetes.io/instance": "kong"}
    assert to_db["egress"][0]["to"] == [{"podSelector": {"matchLabels": {"cnpg.io/cluster": "kong-postgres"}}}]
    assert to_db["egress"][0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    from_kong = find(docs, "NetworkPolicy", "allow-postgres-from-kong")["spec"]
    assert from_kong["podSelector"]["matchLabels"] == {"cnpg.io/cluster": "kong-postgres"}
    assert from_kong["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 5432}]
    operator = find(docs, "NetworkPolicy", "allow-postgres-from-operator")["spec"]
    [rule] = operator["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cnpg-system"}}}]
    assert sorted(p["port"] for p in rule["ports"]) == [5432, 8000]


def test_operator_namespace_follows_the_inventory(production):
    docs = manifests_of(build(production, cloudnative_pg={"namespace": "databases"}), "kong")
    operator = find(docs, "NetworkPolicy", "allow-postgres-from-operator")["spec"]
    assert operator["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "databases"}


def test_kong_reaches_each_business_app_namespace_on_its_ports(production):
    docs = _manifests(production)
    expected = {"store": [8080], "payments": [8443]}
    for namespace, ports in expected.items():
        egress = find(docs, "NetworkPolicy", "allow-to-%s" % namespace)["spec"]["egress"][0]
        assert egress["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}]
        assert [p["port"] for p in egress["ports"]] == ports


def test_monitoring_hooks_follow_the_monitoring_component(production):
    values = _values(production)
    docs = _manifests(production)
    assert values["serviceMonitor"]["enabled"] is True
    assert find(docs, "KongClusterPlugin", "prometheus")["plugin"] == "prometheus"
    assert find(docs, "PodMonitor")["spec"]["selector"]["matchLabels"] == {"cnpg.io/cluster": "kong-postgres"}
    metrics = find(docs, "NetworkPolicy", "allow-metrics")["spec"]["ingress"][0]
    assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]

    spec = build(production, monitoring={"enabled": False})
    values = values_of(spec, "kong")
    docs = manifests_of(spec, "kong")
    assert "serviceMonitor" not in values
    assert not of_kind(docs, "KongClusterPlugin")
    assert not of_kind(docs, "PodMonitor")
    assert not [d for d in docs if d["metadata"]["name"] in ("allow-metrics", "allow-postgres-metrics")]


def test_manifest_names_are_unique(production):
    docs = _manifests(production)
    keys = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(keys) == len(set(keys))


# --- cross-checks -----------------------------------------------------------------------

def test_replicas_must_fit_the_gateway_hosts(production):
    production[1]["kong_nodes"] = ["gw-1", "gw-2"]
    assert ("plinth_components.kong.replicas: got 3; 3 replicas need 3 hosts in pool 'gateway' "
            "(group kong_nodes has 2)") in spec_errors(production)


def test_more_replicas_than_hosts_is_rejected(production):
    assert ("plinth_components.kong.replicas: got 4; 4 replicas need 4 hosts in pool 'gateway' "
            "(group kong_nodes has 3)") in spec_errors(production, kong={"replicas": 4})


def test_cloudnative_pg_mode_needs_the_operator(production):
    errors = spec_errors(production, cloudnative_pg={"enabled": False})
    assert ("plinth_components.kong.database.mode: got 'cloudnative-pg'; needs "
            "plinth_components.cloudnative_pg.enabled: true (or database.mode: external)") in errors


def test_database_password_needs_external_secrets(production):
    errors = spec_errors(production, external_secrets={"enabled": False})
    assert any(e.startswith("plinth_components.kong.database.mode: got 'cloudnative-pg'; ") and
               "external_secrets.enabled: true" in e for e in errors), errors


def test_external_mode_needs_a_host(production):
    errors = spec_errors(production, kong={"database": {"mode": "external"}})
    assert ("plinth_components.kong.database.host: got None; is required when database.mode is "
            "'external'") in errors


def test_host_is_rejected_in_cloudnative_pg_mode(production):
    options(production, "kong")["database"]["host"] = "db.example.com"
    assert ("plinth_components.kong.database.host: got 'db.example.com'; is only used when "
            "database.mode is 'external'") in spec_errors(production)


def test_postgres_instances_must_fit_their_pool(production):
    options(production, "kong")["database"]["instances"] = 4
    assert ("plinth_components.kong.database.instances: got 4; 4 PostgreSQL instances need 4 hosts "
            "in pool 'worker' (group workers has 3)") in spec_errors(production)


def test_postgres_pool_must_exist(production):
    options(production, "kong")["database"]["pool"] = "databases"
    assert ("plinth_components.kong.database.pool: got 'databases'; no such node pool "
            "(known: gateway, storage, worker)") in spec_errors(production)


@pytest.mark.parametrize("key, value, rule", [
    ("mode", "sqlite", "must be one of 'cloudnative-pg', 'external'"),
    ("user", "Kong-User", "must be a PostgreSQL identifier"),
    ("storage_size", "ten gigs", "must be a Kubernetes quantity"),
    ("network", "10.0.0.1/8", "must be a network in CIDR notation"),
    ("bogus", 1, "unknown key"),
])
def test_database_options_are_validated(production, key, value, rule):
    options(production, "kong")["database"][key] = value
    errors = spec_errors(production)
    assert any(e.startswith("plinth_components.kong.database.%s: " % key) and rule in e for e in errors), errors


def test_a_password_in_the_inventory_is_refused(production):
    options(production, "kong")["database"]["password"] = "hunter2"
    errors = spec_errors(production)
    assert any(e.startswith("plinth_components.kong.database.password: got '<redacted>'; secret-key") for e in errors)
    assert not any("hunter2" in e for e in errors)


# --- database backups -------------------------------------------------------------------

def _backup_docs(inventory, backup=None, database=None, **components):
    """Kong's manifests for a copy of ``inventory`` (left untouched) with these backup settings."""
    kong = {"database": dict({"mode": "cloudnative-pg", "backup": backup or {}}, **(database or {}))}
    return manifests_of(build(copy.deepcopy(inventory), kong=kong, **components), "kong")


def _wave(doc):
    return doc["metadata"]["annotations"][WAVE]


def test_volume_snapshot_backups_by_default_on_rook_block_storage(production):
    docs = _backup_docs(production)
    assert find(docs, "Cluster")["spec"]["backup"] == {
        "volumeSnapshot": {"className": "ceph-block", "snapshotOwnerReference": "backup"}}
    scheduled = find(docs, "ScheduledBackup", "kong-postgres")
    assert scheduled["metadata"]["namespace"] == "kong"
    assert scheduled["spec"] == {"schedule": "0 0 3 * * *", "cluster": {"name": "kong-postgres"},
                                 "method": "volumeSnapshot", "immediate": True, "backupOwnerReference": "none"}
    assert _wave(scheduled) == "1" and _wave(find(docs, "Cluster")) == "-1"
    assert not of_kind(docs, "ObjectBucketClaim")


def test_volume_snapshot_retention_is_a_job_that_may_only_delete_backups(production):
    docs = _backup_docs(production, {"retention": "2w"})
    name = "kong-postgres-backup-retention"
    [rule] = find(docs, "Role", name)["rules"]
    assert rule == {"apiGroups": ["postgresql.cnpg.io"], "resources": ["backups"],
                    "verbs": ["get", "list", "delete"]}
    binding = find(docs, "RoleBinding", name)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "kong"}]
    assert find(docs, "ServiceAccount", name)["metadata"]["namespace"] == "kong"
    job = find(docs, "CronJob", name)["spec"]
    assert job["concurrencyPolicy"] == "Forbid"
    pod = job["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == name
    assert pod["nodeSelector"] == {"node.role": "worker"}
    [container] = pod["containers"]
    assert container["image"] == "registry.k8s.io/kubectl:v1.36.3"
    env = dict((e["name"], e["value"]) for e in container["env"])
    assert env == {"NAMESPACE": "kong", "CLUSTER": "kong-postgres", "KEEP_SECONDS": str(14 * 86400),
                   "HOME": "/tmp"}
    # Restricted Pod Security, like everything else in the namespace.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                            "readOnlyRootFilesystem": True}


@pytest.mark.parametrize("retention, seconds", [("14d", 14 * 86400), ("2w", 14 * 86400), ("3m", 90 * 86400)])
def test_retention_in_seconds(retention, seconds):
    assert cnpg_backup.retention_seconds(retention) == seconds


def _fake_kubectl(tmp_path, backups):
    (tmp_path / "backups.json").write_text(json.dumps({"items": backups}))
    kubectl = tmp_path / "kubectl"
    kubectl.write_text('#!/bin/bash\nif [ "$1" = get ]; then cat "%s"; else echo "$*" >> "%s"; fi\n'
                       % (tmp_path / "backups.json", tmp_path / "deleted"))
    kubectl.chmod(0o755)


def _backup(name, days_old, cluster="kong-postgres", method="volumeSnapshot", phase="completed"):
    created = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_old)
    return {"metadata": {"name": name, "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "spec": {"cluster": {"name": cluster}, "method": method}, "status": {"phase": phase}}


def _prune(tmp_path, backups):
    _fake_kubectl(tmp_path, backups)
    env = dict(os.environ, PATH="%s:%s" % (tmp_path, os.environ["PATH"]), NAMESPACE="kong",
               CLUSTER="kong-postgres", KEEP_SECONDS=str(14 * 86400))
    subprocess.run(["bash", "-c", cnpg_backup.PRUNE_SCRIPT], env=env, check=True)
    deleted = tmp_path / "deleted"
    return deleted.read_text().splitlines() if deleted.exists() else []


@pytest.mark.skipif(not shutil.which("jq"), reason="needs jq, as the kubectl image has")
def test_retention_job_deletes_old_snapshot_backups_of_its_cluster_only(tmp_path):
    deleted = _prune(tmp_path, [
        _backup("old", 20), _backup("old-failed", 30, phase="failed"), _backup("recent", 3),
        _backup("other-cluster", 40, cluster="other"), _backup("object-store", 40, method="barmanObjectStore"),
    ])
    assert deleted == ["delete backups.postgresql.cnpg.io old --namespace kong --wait=false",
                       "delete backups.postgresql.cnpg.io old-failed --namespace kong --wait=false"]


@pytest.mark.skipif(not shutil.which("jq"), reason="needs jq, as the kubectl image has")
def test_retention_job_keeps_the_newest_completed_backup_however_old(tmp_path):
    deleted = _prune(tmp_path, [_backup("older", 40), _backup("newest", 20), _backup("failed", 1, phase="failed")])
    assert deleted == ["delete backups.postgresql.cnpg.io older --namespace kong --wait=false"]


def test_object_store_backups_when_rook_serves_one(production):
    docs = _backup_docs(production, {"retention": "30d", "schedule": "0 30 1 * * *"},
                        rook_ceph={"object_store": True})
    claim = find(docs, "ObjectBucketClaim", "kong-postgres-backups")
    assert claim["apiVersion"] == "objectbucket.io/v1alpha1"
    assert claim["spec"] == {"bucketName": "kong-postgres-backups", "storageClassName": "rook-ceph-bucket"}
    assert claim["metadata"]["annotations"]["argocd.argoproj.io/sync-options"] == "Prune=false,Delete=false"
    assert _wave(claim) == "-2"
    backup = find(docs, "Cluster")["spec"]["backup"]
    assert backup["retentionPolicy"] == "30d"
    store = backup["barmanObjectStore"]
    assert store["destinationPath"] == "s3://kong-postgres-backups/"
    assert store["endpointURL"] == "http://rook-ceph-rgw-ceph-objectstore.rook-ceph.svc:80"
    assert store["s3Credentials"] == {
        "accessKeyId": {"name": "kong-postgres-backups", "key": "AWS_ACCESS_KEY_ID"},
        "secretAccessKey": {"name": "kong-postgres-backups", "key": "AWS_SECRET_ACCESS_KEY"}}
    scheduled = find(docs, "ScheduledBackup")["spec"]
    assert (scheduled["method"], scheduled["schedule"]) == ("barmanObjectStore", "0 30 1 * * *")
    assert not of_kind(docs, "CronJob")


def test_instances_reach_the_object_store_gateways(production):
    docs = _backup_docs(production, rook_ceph={"object_store": True})
    policy = find(docs, "NetworkPolicy", "allow-postgres-to-object-store")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "kong-postgres"}}
    [rule] = policy["egress"]
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "rook-ceph"}},
                           "podSelector": {"matchLabels": {"app": "rook-ceph-rgw",
                                                           "rook_object_store": "ceph-objectstore"}}}]
    # The Service's port 80 leads to the gateways' 8080, which is what a policy sees.
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert not of_kind([d for d in _backup_docs(production) if d["metadata"]["name"].endswith("object-store")],
                       "NetworkPolicy")


def test_volume_snapshots_can_be_asked_for_beside_an_object_store(production):
    docs = _backup_docs(production, {"method": "volume_snapshot"}, rook_ceph={"object_store": True})
    assert "volumeSnapshot" in find(docs, "Cluster")["spec"]["backup"]
    assert not of_kind(docs, "ObjectBucketClaim")
    assert find(docs, "ScheduledBackup")["spec"]["method"] == "volumeSnapshot"


def test_another_storage_class_needs_its_own_snapshot_class(production):
    docs = _backup_docs(production, database={"storage_class": "fast"})
    assert "backup" not in find(docs, "Cluster")["spec"]
    assert not of_kind(docs, "ScheduledBackup")
    docs = _backup_docs(production, {"volume_snapshot_class": "fast-snapshots"}, database={"storage_class": "fast"})
    assert find(docs, "Cluster")["spec"]["backup"]["volumeSnapshot"]["className"] == "fast-snapshots"


def test_no_backups_when_disabled_or_without_rook(production):
    options(production, "logging").clear()  # Loki needs a StorageClass without Rook
    for docs in (_backup_docs(production, {"enabled": False}),
                 _backup_docs(production, rook_ceph={"enabled": False})):
        assert "backup" not in find(docs, "Cluster")["spec"]
        assert not of_kind(docs, "ScheduledBackup") and not of_kind(docs, "CronJob")


def test_object_store_method_needs_the_object_store(production):
    errors = spec_errors(production, kong={"database": {"mode": "cloudnative-pg",
                                                        "backup": {"method": "object_store"}}})
    assert ("plinth_components.kong.database.backup.method: got 'object_store'; needs the Rook-Ceph object "
            "store: plinth_components.rook_ceph.enabled and rook_ceph.object_store: true") in errors


def test_volume_snapshot_method_needs_a_snapshot_class(production):
    errors = spec_errors(production, rook_ceph={"enabled": False}, kong={"database": {
        "mode": "cloudnative-pg", "backup": {"method": "volume_snapshot"}}})
    assert any(e.startswith("plinth_components.kong.database.backup.method: got 'volume_snapshot'; needs a "
                            "VolumeSnapshotClass") for e in errors), errors


def test_bucket_name_must_fit_s3(production):
    name = "k" * 60
    errors = spec_errors(production, rook_ceph={"object_store": True}, kong={"database": {
        "mode": "cloudnative-pg", "cluster_name": name}})
    assert ("plinth_components.kong.database.cluster_name: got %r; names the backup bucket %r, longer than "
            "S3's 63 characters; object store backups need a shorter name" % (name, name + "-backups")) in errors


@pytest.mark.parametrize("key, value, rule", [
    ("schedule", "0 3 * * *", "must be a six-field cron expression, seconds first"),
    ("retention", "14 days", "must be a number of days, weeks or months like 14d, 2w or 3m"),
    ("retention", "0d", "must be a number of days, weeks or months"),
    ("method", "tape", "must be one of 'auto', 'object_store', 'volume_snapshot'"),
    ("volume_snapshot_class", "Fast", "must be a DNS subdomain"),
])
def test_backup_options_are_validated(production, key, value, rule):
    errors = spec_errors(production, kong={"database": {"mode": "cloudnative-pg", "backup": {key: value}}})
    prefix = "plinth_components.kong.database.backup.%s: got %r; " % (key, value)
    assert any(e.startswith(prefix) and rule in e for e in errors), errors


def test_a_new_cluster_restores_from_a_backup(production):
    docs = _backup_docs(production, database={"cluster_name": "kong-postgres-2",
                                              "restore_from": "kong-postgres-20261201030000"})
    cluster = find(docs, "Cluster", "kong-postgres-2")["spec"]
    assert cluster["bootstrap"] == {"recovery": {
        "backup": {"name": "kong-postgres-20261201030000"},
        "database": "kong", "owner": "kong", "secret": {"name": "kong-database"}}}
    # The restored cluster is backed up, and Kong talks to it, like the one it replaces.
    assert find(docs, "ScheduledBackup", "kong-postgres-2")["spec"]["cluster"] == {"name": "kong-postgres-2"}


def test_restore_to_a_point_in_time(production):
    docs = _backup_docs(production, database={"restore_from": "nightly",
                                              "restore_target_time": "2026-12-01 10:00:00+00"},
                        rook_ceph={"object_store": True})
    recovery = find(docs, "Cluster")["spec"]["bootstrap"]["recovery"]
    assert recovery["recoveryTarget"] == {"targetTime": "2026-12-01 10:00:00+00"}


def test_restore_target_time_needs_a_backup_to_start_from(production):
    errors = spec_errors(production, kong={"database": {"mode": "cloudnative-pg",
                                                        "restore_target_time": "2026-12-01 10:00:00+00"}})
    assert ("plinth_components.kong.database.restore_target_time: got '2026-12-01 10:00:00+00'; is the end "
            "of a restore: needs database.restore_from") in errors

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Consul: a server-only cluster that is Vault's storage backend.

consul-k8s 1.x/2.x runs the dataplane architecture: no client agents, and
Vault's ``storage "consul"`` talks to the server Service by its DNS name, so
only the server StatefulSet is deployed (no mesh, no connect injector, no
catalog sync, no DNS Service).

ACLs are off by default: with ``manageSystemACLs`` the servers deny anonymous
requests, and Vault then needs a Consul token with write access to its KV
prefix before it can start.  That token cannot come from Vault itself, so it
sits in a Kubernetes Secret the operator creates (see the vault component's
``consul_token_secret_name``).  Without ACLs, the NetworkPolicies below are
what keeps everything but Vault away from the HTTP API, and Vault encrypts
every value with its barrier key before Consul stores it.

Gossip encryption (``gossip_encryption``):
``generate``  the chart's pre-install Job creates a random key in a Secret
              once (it keeps an existing one); the default.
``vault``     an ExternalSecret reads the key from Vault.  Vault stores its
              data in this very Consul, so on a fresh cluster the servers
              would wait for a Secret that only a running Vault can provide:
              switch to it only once Vault is up, with the key already written
              at ``gossip_key_vault_path`` (e.g. the generated one, copied).
``none``      plain gossip, limited to Consul's own pods by NetworkPolicy.

Metrics: with the monitoring component, the servers serve Prometheus text at
``/v1/agent/metrics?format=prometheus`` on the HTTP port, which only a
PodMonitor written here scrapes (the chart ships no monitor).  With ACLs the
endpoint wants a token with ``agent:read``: the operator stores one in
``metrics_token_secret_name`` (key ``token``) and Prometheus sends it as a
Bearer token.

Snapshots (``snapshot``): a CronJob saves a Raft snapshot of the whole KV
store (Vault's encrypted data) to a Ceph volume and keeps the newest
``retention`` files.  Consul's snapshot API wants a management token once ACLs
are on; the chart's bootstrap token Secret is the one it has.
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RELEASE = "consul"
# global.name: resources are "consul-server", not the chart's "<release>-consul-server".
NAME = "consul"
HTTP_PORT = 8500
SERVER_RPC_PORT = 8300
SERF_LAN_PORT = 8301
SERF_WAN_PORT = 8302
GOSSIP_SECRET = "consul-gossip-key"
GOSSIP_SECRET_KEY = "key"
# Pods of the chart that call the Kubernetes API: the servers' locality-init container reads
# their node's topology labels, the Jobs write Secrets and the ACL auth method.
API_CLIENTS = ("server", "gossip-encryption-autogenerate", "server-acl-init", "server-acl-init-cleanup")
# The image the pinned chart runs the servers with (global.image): the snapshot CLI matches them.
CHART_IMAGE = "hashicorp/consul:2.0.3"
# The chart's server-acl-init writes the bootstrap (management) token here, "<global.name>-bootstrap-acl-token".
BOOTSTRAP_TOKEN_SECRET = NAME + "-bootstrap-acl-token"
TOKEN_KEY = "token"
# The consul user of the image, as the chart's server securityContext runs it.
RUN_AS_USER = 100
RUN_AS_GROUP = 1000
SNAPSHOT_NAME = NAME + "-snapshot"
SNAPSHOT_DIR = "/snapshots"
METRICS_PATH = "/v1/agent/metrics"
# Five cron fields, or one of the @ shorthands Kubernetes accepts.
_CRON = re.compile(r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$")


def cron_schedule(value):
    if not _CRON.match(value.strip()):
        return "must be a cron schedule: five fields (minute hour day month weekday) or @daily, @hourly..."
    return None


def image_reference(value):
    if not value.strip() or any(c.isspace() for c in value):
        return "must be an image reference without spaces (repository:tag)"
    return None


OPTIONS = {
    "replicas": s.Int(3, minimum=1, doc="Consul servers (Raft voters), one per host of the pool; odd."),
    "storage": s.Str("10Gi", checks=[s.quantity], doc="PVC size of each server."),
    "storage_class": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                           doc="StorageClass of the server PVCs; default: rook_ceph.storage_class "
                               "when Rook-Ceph is enabled, else the cluster default."),
    "resources": s.Resources("100m", "256Mi", "1", "512Mi", doc="Requests and limits of each server container."),
    "ui": s.Bool(False, doc="Serve the Consul web UI from the servers (ClusterIP Service consul-ui)."),
    "acls": s.Bool(False, doc="Let the chart bootstrap and manage ACLs (default deny); Vault then "
                              "reads its Consul token from vault.consul_token_secret_name."),
    "gossip_encryption": s.Str("generate", choices=("generate", "vault", "none"),
                               doc="Where the gossip key comes from: generate (chart Job, once), "
                                   "vault (ExternalSecret; only once Vault is running) or none."),
    "gossip_key_vault_path": s.Str("platform/consul/gossip",
                                   doc="Vault KV path whose property 'key' holds the gossip key "
                                       "(gossip_encryption: vault)."),
    "metrics_token_secret_name": s.Str("consul-metrics-token", checks=[s.dns_subdomain],
                                       doc="Secret in Consul's namespace whose key 'token' is a Consul ACL token "
                                           "with agent read access, sent by Prometheus; read only when acls "
                                           "and monitoring are both on. Created by the operator."),
    "snapshot": s.Dict({
        "enabled": s.Bool(False, doc="Save a snapshot of Consul (Vault's data) on a schedule."),
        "schedule": s.Str("0 2 * * *", checks=[cron_schedule], doc="Cron schedule of the CronJob (UTC)."),
        "retention": s.Int(7, minimum=1, doc="How many snapshot files to keep, newest first."),
        "storage": s.Str("5Gi", checks=[s.quantity], doc="Size of the PVC that holds the snapshots."),
        "storage_class": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                               doc="StorageClass of that PVC; default: rook_ceph.storage_class when "
                                   "Rook-Ceph is enabled, else the cluster default."),
        "image": s.Str(None, nullable=True, checks=[image_reference],
                       doc="Image with the consul CLI; default: the chart's (%s)." % CHART_IMAGE),
        "token_secret_name": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                                   doc="Secret (key 'token') with a management token, read when acls is "
                                       "true; default: the chart's %s." % BOOTSTRAP_TOKEN_SECRET),
    }, doc="Scheduled snapshots of the Consul servers to a volume (see the README for the restore)."),
}


def server_labels():
    """Labels of the server pods, as the chart sets them."""
    return {"app": "consul", "release": RELEASE, "component": "server"}


def server_address(spec):
    """host:port of the Consul HTTP API for in-cluster clients (Vault's storage)."""
    settings = spec["components"]["consul"]
    return "%s-server.%s.svc:%d" % (NAME, settings["namespace"], HTTP_PORT)


def storage_class(spec, settings):
    """The servers' StorageClass, or None for the cluster default."""
    return common.storage_class(spec, settings.get("storage_class"))


def _text(value):
    """Render a value for the chart keys that take YAML as a string (they pass it to tpl).

    JSON is valid YAML and needs no quoting rules of its own.
    """
    return json.dumps(value, sort_keys=True)


def _placement(spec, settings):
    """nodeSelector and tolerations as the chart wants them: YAML text, empty when unset."""
    selector = common.node_selector(spec, settings["pool"])
    tolerations = common.tolerations(spec, settings["pool"])
    return {"nodeSelector": _text(selector) if selector else None,
            "tolerations": _text(tolerations) if tolerations else ""}


def _gossip(settings):
    mode = settings["gossip_encryption"]
    if mode == "generate":
        return {"autoGenerate": True}
    if mode == "vault":
        return {"autoGenerate": False, "secretName": GOSSIP_SECRET, "secretKey": GOSSIP_SECRET_KEY}
    return {"autoGenerate": False}


def _acls(spec, settings):
    acls = {"manageSystemACLs": settings["acls"]}
    if settings["acls"]:
        # The acl-init Jobs are placed like the servers.
        acls.update(_placement(spec, settings))
    return acls


def _server(spec, settings):
    replicas = settings["replicas"]
    return dict(_placement(spec, settings), **{
        "replicas": replicas,
        "storage": settings["storage"],
        "storageClass": storage_class(spec, settings),
        # The service-mesh CA is not needed: nothing joins a mesh.
        "connect": False,
        "resources": dict((k, dict(v)) for k, v in settings["resources"].items()),
        # The chart's default affinity already keeps one server per host.
        # A stopped server leaves the Raft pool, so never more than one at a time.
        "disruptionBudget": {"enabled": replicas > 1, "maxUnavailable": 1},
    })


def _monitoring(spec):
    return common.enabled(spec, "monitoring")


def _metrics(spec):
    if not _monitoring(spec):
        return {"enabled": False}
    # agentMetricsRetentionTime becomes telemetry.prometheus_retention_time: without it the
    # servers serve no Prometheus text.  The hostname prefix would split every gauge per pod name.
    return {"enabled": True, "enableAgentMetrics": True, "agentMetricsRetentionTime": "1m",
            "disableAgentHostName": True}


def values(spec, settings):
    return {
        "global": {
            "name": NAME,
            "datacenter": spec["cluster_name"],
            "tls": {"enabled": False},
            "gossipEncryption": _gossip(settings),
            "acls": _acls(spec, settings),
            "metrics": _metrics(spec),
            # Makes the acl-init Job an Argo CD Sync hook, re-created on each sync.
            "argocd": {"enabled": True},
        },
        "server": _server(spec, settings),
        "client": {"enabled": False},
        "connectInject": {"enabled": False},
        "dns": {"enabled": False},
        "syncCatalog": {"enabled": False},
        "meshGateway": {"enabled": False},
        # The UI's metrics would inherit global.metrics and query a Prometheus URL that does not exist here.
        "ui": {"enabled": settings["ui"], "service": {"enabled": settings["ui"], "type": "ClusterIP"},
               "metrics": {"enabled": False}},
        # Helm test Pods: Argo CD never runs them.
        "tests": {"enabled": False},
    }


def _ports(*specs):
    return [{"protocol": proto, "port": port} for port, proto in specs]


def _cluster_ports():
    return _ports((SERVER_RPC_PORT, "TCP"), (SERF_LAN_PORT, "TCP"), (SERF_LAN_PORT, "UDP"),
                  (SERF_WAN_PORT, "TCP"), (SERF_WAN_PORT, "UDP"))


def network_policies(spec, settings):
    """Every list is built afresh: shared objects would come out as YAML anchors."""
    namespace = settings["namespace"]

    def servers():
        return [common.namespace_peer(namespace, server_labels())]

    policies = common.baseline_policies(namespace) + [
        # Raft RPC and LAN/WAN gossip between the servers only.
        common.network_policy(
            "allow-server-cluster", namespace, server_labels(),
            ingress=[{"from": servers(), "ports": _cluster_ports()},
                     # Pods of this namespace (servers, acl-init Jobs) call the HTTP API.
                     {"from": [{"podSelector": {}}], "ports": common.tcp_ports(HTTP_PORT)}],
            egress=[{"to": servers(), "ports": _cluster_ports()}]),
        common.network_policy("allow-local-http", namespace,
                              egress=[{"to": servers(), "ports": common.tcp_ports(HTTP_PORT)}]),
    ]
    apiserver = common.allow_apiserver(spec, namespace)
    apiserver["spec"]["podSelector"] = {"matchExpressions": [
        {"key": "component", "operator": "In", "values": list(API_CLIENTS)}]}
    policies.append(apiserver)
    vault = spec["components"].get("vault") or {}
    if vault.get("enabled"):
        # Vault's storage backend needs the HTTP API only: it joins no gossip pool.
        policies.append(common.network_policy("allow-vault", namespace, server_labels(), ingress=[{
            "from": [common.namespace_peer(vault["namespace"],
                                           {"app.kubernetes.io/name": "vault", "component": "server"})],
            "ports": common.tcp_ports(HTTP_PORT),
        }]))
    if _monitoring(spec):
        policies.append(common.network_policy("allow-prometheus", namespace, server_labels(), ingress=[{
            "from": [_prometheus_peer(spec)], "ports": common.tcp_ports(HTTP_PORT)}]))
    # The snapshot Job's pods need nothing more: allow-local-http and allow-server-cluster
    # admit every pod of this namespace to the servers' HTTP port.
    return policies


def _prometheus_peer(spec):
    """Prometheus alone, not every pod of the monitoring namespace: without ACLs the HTTP API is open."""
    return common.namespace_peer(spec["components"]["monitoring"]["namespace"],
                                 {"app.kubernetes.io/name": "prometheus"})


def pod_monitor(spec, settings):
    """The servers' metrics endpoint, for the Prometheus operator."""
    endpoint = {"port": "http", "path": METRICS_PATH, "params": {"format": ["prometheus"]},
                "interval": "30s", "scheme": "http"}
    if settings["acls"]:
        endpoint["authorization"] = {"type": "Bearer", "credentials": {
            "name": settings["metrics_token_secret_name"], "key": TOKEN_KEY}}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": common.metadata(NAME + "-server", settings["namespace"]),
        "spec": {"selector": {"matchLabels": server_labels()}, "podMetricsEndpoints": [endpoint]},
    }


def snapshot_labels():
    return {"app.kubernetes.io/name": SNAPSHOT_NAME, "app.kubernetes.io/part-of": NAME}


def _snapshot_script(retention):
    """Save under a temporary name, so that an interrupted run never counts as a kept snapshot."""
    return "\n".join([
        "set -eu",
        # Runs never overlap (concurrencyPolicy Forbid): a partial file is a dead run's.
        "rm -f %s/*.partial*" % SNAPSHOT_DIR,
        'file="%s/consul-$(date -u +%%Y%%m%%dT%%H%%M%%SZ).snap"' % SNAPSHOT_DIR,
        'consul snapshot save "$file.partial"',
        'mv "$file.partial" "$file"',
        # The names sort by time; everything past the newest %d goes.
        "ls -1 %s/consul-*.snap | sort -r | tail -n +%d | while read -r old; do rm -f \"$old\"; done"
        % (SNAPSHOT_DIR, retention + 1),
        "ls -l %s" % SNAPSHOT_DIR,
    ]) + "\n"


def _snapshot_env(settings):
    address = "http://%s-server.%s.svc:%d" % (NAME, settings["namespace"], HTTP_PORT)
    env = [{"name": "CONSUL_HTTP_ADDR", "value": address},
           # The root filesystem is read-only; whatever the CLI keeps in HOME lands on the emptyDir.
           {"name": "HOME", "value": "/tmp"}]
    if settings["acls"]:
        secret = settings["snapshot"]["token_secret_name"] or BOOTSTRAP_TOKEN_SECRET
        env.append({"name": "CONSUL_HTTP_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": TOKEN_KEY}}})
    return env


def _snapshot_container(settings):
    snapshot = settings["snapshot"]
    return {
        "name": "snapshot",
        "image": snapshot["image"] or CHART_IMAGE,
        "command": ["/bin/sh", "-c", _snapshot_script(snapshot["retention"])],
        "env": _snapshot_env(settings),
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "snapshots", "mountPath": SNAPSHOT_DIR}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def _snapshot_pod(spec, settings):
    placement = common.placement(spec, settings["pool"])
    pod = {
        # A failed run's Pod stays (failedJobsHistoryLimit) with its log; the Job starts a new one.
        "restartPolicy": "Never",
        # The Pod talks to Consul's HTTP API only, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_GROUP,
                            "fsGroup": RUN_AS_GROUP, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [_snapshot_container(settings)],
        "volumes": [{"name": "snapshots", "persistentVolumeClaim": {"claimName": SNAPSHOT_NAME + "s"}},
                    {"name": "tmp", "emptyDir": {}}],
    }
    pod.update((key, value) for key, value in placement.items() if value)
    return {"metadata": {"labels": snapshot_labels()}, "spec": pod}


def snapshot_claim(spec, settings):
    snapshot = settings["snapshot"]
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": snapshot["storage"]}}}
    klass = common.storage_class(spec, snapshot["storage_class"])
    if klass:
        claim["storageClassName"] = klass
    # Argo CD never prunes the backups, even when the feature is switched off.
    metadata = common.metadata(SNAPSHOT_NAME + "s", settings["namespace"], labels=snapshot_labels(),
                               annotations={"argocd.argoproj.io/sync-options": "Prune=false"})
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": claim}


def snapshot_cron_job(spec, settings):
    job = {
        # A retry after a failed save still lands within the hour; beyond that, wait for the next run.
        "backoffLimit": 3,
        "activeDeadlineSeconds": 3600,
        "template": _snapshot_pod(spec, settings),
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": common.metadata(SNAPSHOT_NAME, settings["namespace"], labels=snapshot_labels()),
        "spec": {
            "schedule": settings["snapshot"]["schedule"],
            "timeZone": "Etc/UTC",
            # One writer at a time on the ReadWriteOnce volume.
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"metadata": {"labels": snapshot_labels()}, "spec": job},
        },
    }


def manifests(spec, settings):
    docs = network_policies(spec, settings)
    if settings["gossip_encryption"] == "vault":
        secret = common.external_secret(spec, GOSSIP_SECRET, settings["namespace"],
                                        {GOSSIP_SECRET_KEY: (settings["gossip_key_vault_path"], "key")},
                                        # A restart does not apply a new gossip key, and a rolling one with a
                                        # changed key may split the cluster: rotating it is a manual procedure.
                                        reload=False)
        # The ExternalSecret CRD arrives with the external-secrets app, in a later wave.
        secret["metadata"]["annotations"] = {
            "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"}
        docs.append(secret)
    if _monitoring(spec):
        docs.append(pod_monitor(spec, settings))
    if settings["snapshot"]["enabled"]:
        docs += [snapshot_claim(spec, settings), snapshot_cron_job(spec, settings)]
    return docs


def check(spec, settings, errors, path):
    replicas = settings["replicas"]
    common.check_fits_pool(spec, settings, errors, path + ".replicas", replicas, what="Consul servers")
    if replicas % 2 == 0:
        errors.add(path + ".replicas", replicas,
                   "Consul servers form a Raft quorum: use an odd number (an even one adds no fault tolerance)")
    gossip = settings["gossip_encryption"]
    pool = spec["node_pools"].get(settings["pool"]) or {}
    if gossip == "generate" and pool.get("taints"):
        errors.add(path + ".gossip_encryption", gossip,
                   "the chart's key-generation Job takes no tolerations, so it cannot run on the tainted "
                   "pool %r: use 'vault' or 'none'" % settings["pool"])
    if gossip == "vault" and not common.enabled(spec, "external_secrets"):
        errors.add(path + ".gossip_encryption", gossip, "needs plinth_components.external_secrets.enabled: true")


COMPONENT = Component(
    key="consul", title="Consul", namespace="consul", project="platform", pool="worker", enabled=True,
    pod_security="restricted",
    options=OPTIONS,
    check=check,
    releases=[Release(RELEASE, 30, {"repo": "https://helm.releases.hashicorp.com", "name": "consul",
                                    "version": "2.0.3"},
                      values=values, manifests=manifests)],
    doc="Server-only Consul cluster, the storage backend of Vault.",
)

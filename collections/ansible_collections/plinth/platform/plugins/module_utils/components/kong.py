# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Kong Gateway: the kong chart with its ingress controller, backed by PostgreSQL.

The database is either an in-cluster CloudNativePG ``Cluster`` rendered into
Kong's own Application (mode ``cloudnative-pg``) or an external server (mode
``external``).  Either way the password comes from Vault through an
ExternalSecret; the values only reference the Secret.

The in-cluster database is backed up on a schedule (``database.backup``): to
the Rook-Ceph object store when it runs, else as volume snapshots; see
``cnpg_backup`` for both methods and how their retention is applied.

Inside the Application, sync waves order the pieces: NetworkPolicies, then
the ExternalSecret, then the PostgreSQL Cluster (Argo CD waits for it to be
healthy), then the chart (Deployment and the migration Jobs, which the chart
marks as Argo CD Sync hooks), then the objects that need Kong's CRDs.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy
import ipaddress
import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release, common
from ansible_collections.plinth.platform.plugins.module_utils.components import cnpg_backup

__metaclass__ = type

RELEASE = "kong"
CHART = {"repo": "https://charts.konghq.com", "name": "kong", "version": "3.4.1"}
CNPG_API = "postgresql.cnpg.io/v1"
MODES = ("cloudnative-pg", "external")
SECRET = "kong-database"          # basic-auth Secret: username + password

# Container ports of the chart's defaults (proxy, status, controller).
PROXY_PORTS = (8000, 8443)
STATUS_PORT = 8100
CONTROLLER_METRICS_PORT = 10255
POSTGRES_PORT = 5432
CNPG_STATUS_PORT = 8000           # instance manager, polled by the operator
CNPG_METRICS_PORT = 9187

WAVE_POLICIES = "-3"
WAVE_SECRET = "-2"
WAVE_DATABASE = "-1"
WAVE_AFTER_CHART = "1"

PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def pg_identifier(value):
    if not PG_IDENTIFIER.match(value):
        return "must be a PostgreSQL identifier (lowercase letters, digits and '_', at most 63 characters)"
    return None


DATABASE = s.Dict({
    "mode": s.Str("cloudnative-pg", choices=MODES,
                  doc="cloudnative-pg: a PostgreSQL Cluster in Kong's namespace; external: an existing server"),
    "name": s.Str("kong", checks=[pg_identifier], doc="database name"),
    "user": s.Str("kong", checks=[pg_identifier], doc="role Kong connects as (the database owner)"),
    "vault_path": s.Str("platform/kong/postgres", doc="Vault KV path holding the password"),
    "vault_property": s.Str("password", doc="property of vault_path holding the password"),
    "ssl": s.Bool(True, doc="connect with TLS (KONG_PG_SSL); the server certificate is not verified"),
    # external mode
    "host": s.Str(None, nullable=True, checks=[s.ip_or_host], doc="external server; required in external mode"),
    "port": s.Int(POSTGRES_PORT, minimum=1, maximum=65535, doc="external server port"),
    "network": s.Str(None, nullable=True, checks=[s.cidr],
                     doc="CIDR Kong may reach the external server in; default: host/32 for an IP, "
                         "any address (on the port only) for a DNS name"),
    # cloudnative-pg mode
    "cluster_name": s.Str("kong-postgres", checks=[s.dns_label], doc="name of the CloudNativePG Cluster"),
    "instances": s.Int(3, minimum=1, doc="PostgreSQL instances, one per host of database pool"),
    "pool": s.Str("worker", doc="node pool of the PostgreSQL instances"),
    "storage_size": s.Str("10Gi", checks=[s.quantity]),
    "storage_class": s.Str(None, nullable=True,
                           doc="default: rook_ceph.storage_class when rook_ceph is enabled, else the cluster default"),
    "image": s.Str(None, nullable=True, doc="PostgreSQL image; default: the operator's default"),
    "resources": s.Resources("250m", "512Mi", "1", "1Gi"),
    "backup": cnpg_backup.BACKUP,
    "restore_from": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                          doc="a Backup in Kong's namespace that a new Cluster starts from instead of an empty "
                              "database; acts only when the Cluster is created, so set it with a new cluster_name"),
    "restore_target_time": s.Str(None, nullable=True,
                                 doc="replay the WAL archive up to this time (e.g. '2026-12-01 10:00:00+00'); "
                                     "object store backups only"),
})


def chart_labels():
    """Labels on every pod of the release (proxy pods and migration Jobs)."""
    return {"app.kubernetes.io/name": "kong", "app.kubernetes.io/instance": RELEASE}


def proxy_labels():
    """The chart's selector labels of the gateway pods."""
    return dict(chart_labels(), **{"app.kubernetes.io/component": "app"})


def proxy_service(spec):
    """In-cluster DNS name of the proxy Service (the chart names it <release>-kong-proxy)."""
    return "%s-kong-proxy.%s.svc" % (RELEASE, spec["components"]["kong"]["namespace"])


def _database_host(settings):
    db = settings["database"]
    if db["mode"] == "external":
        return db["host"]
    return "%s-rw.%s.svc" % (db["cluster_name"], settings["namespace"])


def _database_port(settings):
    db = settings["database"]
    return db["port"] if db["mode"] == "external" else POSTGRES_PORT


def values(spec, settings):
    pool = settings["pool"]
    replicas = settings["replicas"]
    spread = common.spread(proxy_labels())
    # New pods of a rollout spread among themselves, not against the old ReplicaSet.
    spread["matchLabelKeys"] = ["pod-template-hash"]
    out = {
        "replicaCount": replicas,
        "env": _env(settings),
        "ingressController": {
            "enabled": True,
            "ingressClass": "kong",
            "createIngressClass": True,
            "resources": copy.deepcopy(settings["controller_resources"]),
            # Egress is denied by default: do not try to phone home.
            "env": {"anonymous_reports": "false"},
            # The chart signs the webhook certificate at render time; Argo CD renders
            # on every refresh, so the certificate and caBundle would keep changing.
            "admissionWebhook": {"enabled": False},
        },
        # The Admin API listens on localhost only, for the controller in the same pod;
        # Kong Manager would have nothing to talk to, so it is neither served nor exposed.
        "admin": {"enabled": False},
        "manager": {"enabled": False},
        "proxy": _proxy(settings),
        "nodeSelector": common.node_selector(spec, pool),
        "tolerations": common.tolerations(spec, pool),
        # Spread rather than pod anti-affinity: the chart gives `affinity` to the
        # migration Jobs too, which then could not land next to a gateway pod.
        "topologySpreadConstraints": [spread],
        "updateStrategy": {"type": "RollingUpdate",
                           "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "podDisruptionBudget": _pdb(replicas),
        "resources": copy.deepcopy(settings["resources"]),
        "migrations": {"preUpgrade": True, "postUpgrade": True,
                       "resources": copy.deepcopy(settings["resources"])},
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containerSecurityContext": {
            "enabled": True,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
            "capabilities": {"drop": ["ALL"]},
        },
        "autoscaling": {"enabled": False},
        "postgresql": {"enabled": False},
    }
    if common.enabled(spec, "monitoring"):
        # The CRD comes from the monitoring component; do not hinge on render-time API discovery.
        out["serviceMonitor"] = {"enabled": True, "trustCRDsExist": True}
    return out


def _env(settings):
    db = settings["database"]
    return {
        "database": "postgres",
        "pg_host": _database_host(settings),
        "pg_port": _database_port(settings),
        "pg_database": db["name"],
        "pg_user": db["user"],
        "pg_password": {"valueFrom": {"secretKeyRef": {"name": SECRET, "key": "password"}}},
        "pg_ssl": "on" if db["ssl"] else "off",
        "admin_gui_listen": "off",
        "anonymous_reports": "off",
    }


def _proxy(settings):
    proxy = {"enabled": True, "type": settings["proxy_service_type"]}
    if settings["proxy_service_type"] != "ClusterIP":
        # Keep client addresses and route only to hosts that run a gateway pod.
        proxy["externalTrafficPolicy"] = "Local"
    return proxy


def _pdb(replicas):
    # The chart refuses a PodDisruptionBudget for a single replica.
    if replicas < 2:
        return {"enabled": False}
    return {"enabled": True, "minAvailable": common.pdb_min_available(replicas)}


# --- raw manifests -------------------------------------------------------------

def manifests(spec, settings):
    ns = settings["namespace"]
    db = settings["database"]
    docs = [_wave(doc, WAVE_POLICIES) for doc in network_policies(spec, settings)]
    docs.append(_wave(_database_secret(spec, settings), WAVE_SECRET))
    if db["mode"] == "cloudnative-pg":
        before, after = _backup_objects(spec, settings)
        docs += [_wave(doc, WAVE_SECRET) for doc in before]
        docs.append(_wave(postgres_cluster(spec, settings), WAVE_DATABASE))
        docs += [_wave(doc, WAVE_AFTER_CHART) for doc in after]
    if common.enabled(spec, "monitoring"):
        docs.append(_prometheus_plugin())
        if db["mode"] == "cloudnative-pg":
            docs.append(_postgres_pod_monitor(db["cluster_name"], ns))
    return docs


def _wave(doc, wave):
    doc["metadata"].setdefault("annotations", {})["argocd.argoproj.io/sync-wave"] = wave
    return doc


def _database_secret(spec, settings):
    """The password from Vault, as the basic-auth Secret CloudNativePG's initdb expects."""
    db = settings["database"]
    template = {
        "type": "kubernetes.io/basic-auth",
        "engineVersion": "v2",
        "data": {"username": db["user"], "password": "{{ .password }}"},
    }
    return common.external_secret(spec, SECRET, settings["namespace"],
                                  {"password": (db["vault_path"], db["vault_property"])},
                                  template=template)


def _database_storage_class(spec, db):
    return common.storage_class(spec, db["storage_class"])


def _backup_objects(spec, settings):
    """The bucket claim (before the Cluster), the schedule and the retention job (after it)."""
    db = settings["database"]
    return cnpg_backup.objects(spec, db["cluster_name"], settings["namespace"], db["backup"],
                               _database_storage_class(spec, db), db["pool"])


def postgres_cluster(spec, settings):
    db = settings["database"]
    storage = {"size": db["storage_size"]}
    storage_class = _database_storage_class(spec, db)
    if storage_class:
        storage["storageClass"] = storage_class
    cluster = {
        "apiVersion": CNPG_API,
        "kind": "Cluster",
        "metadata": common.metadata(db["cluster_name"], settings["namespace"]),
        "spec": {
            "instances": db["instances"],
            "bootstrap": cnpg_backup.bootstrap(db["name"], db["user"], SECRET, db["restore_from"],
                                               db["restore_target_time"]),
            "enableSuperuserAccess": False,
            "storage": storage,
            "resources": copy.deepcopy(db["resources"]),
            "affinity": _postgres_affinity(spec, db["pool"]),
            "enablePDB": True,
        },
    }
    if db["image"]:
        cluster["spec"]["imageName"] = db["image"]
    backup = cnpg_backup.cluster_backup(spec, db["cluster_name"], db["backup"], storage_class)
    if backup:
        cluster["spec"]["backup"] = backup
    return cluster


def _postgres_affinity(spec, pool):
    """One instance per host, only on the database pool."""
    affinity = {
        "enablePodAntiAffinity": True,
        "podAntiAffinityType": "required",
        "topologyKey": "kubernetes.io/hostname",
        "nodeSelector": common.node_selector(spec, pool),
    }
    tolerations = common.tolerations(spec, pool)
    if tolerations:
        affinity["tolerations"] = tolerations
    return affinity


def _prometheus_plugin():
    """Global Prometheus plugin: without it Kong's status listener serves no metrics."""
    doc = {
        "apiVersion": "configuration.konghq.com/v1",
        "kind": "KongClusterPlugin",
        "metadata": common.metadata("prometheus", labels={"global": "true"}, annotations={
            "kubernetes.io/ingress.class": "kong",
            # The KongClusterPlugin CRD ships with the chart of this same Application.
            "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true",
        }),
        "plugin": "prometheus",
        "config": {"status_code_metrics": True, "latency_metrics": True,
                   "bandwidth_metrics": True, "upstream_health_metrics": True},
    }
    return _wave(doc, WAVE_AFTER_CHART)


def _postgres_pod_monitor(cluster_name, namespace):
    # CloudNativePG deprecates its built-in PodMonitor switch and asks for one made by hand.
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": common.metadata(cluster_name, namespace),
        "spec": {
            "selector": {"matchLabels": {"cnpg.io/cluster": cluster_name}},
            "podMetricsEndpoints": [{"port": "metrics"}],
        },
    }


# --- network policies ------------------------------------------------------------

def network_policies(spec, settings):
    ns = settings["namespace"]
    db = settings["database"]
    docs = [
        common.default_deny(ns),
        common.allow_dns(ns),
        # The ingress controller and the PostgreSQL instance managers both watch the API.
        common.allow_apiserver(spec, ns),
        common.allow_from("allow-proxy", ns, proxy_labels(), None, list(PROXY_PORTS)),
    ]
    if db["mode"] == "cloudnative-pg":
        docs += _postgres_policies(spec, settings)
    else:
        docs.append(common.allow_to("allow-to-database", ns, chart_labels(),
                                    [_external_network(db)], [db["port"]]))
    docs += _app_egress(spec, ns)
    if common.enabled(spec, "monitoring"):
        monitoring_ns = spec["components"]["monitoring"]["namespace"]
        docs.append(common.allow_from("allow-metrics", ns, proxy_labels(), [monitoring_ns],
                                      [STATUS_PORT, CONTROLLER_METRICS_PORT]))
        if db["mode"] == "cloudnative-pg":
            docs.append(common.allow_from("allow-postgres-metrics", ns, _cluster_labels(db),
                                          [monitoring_ns], [CNPG_METRICS_PORT]))
    return docs


def _cluster_labels(db):
    """CloudNativePG puts this label on the instances and on its bootstrap Jobs."""
    return {"cnpg.io/cluster": db["cluster_name"]}


def _postgres_policies(spec, settings):
    ns = settings["namespace"]
    db = settings["database"]
    postgres = _cluster_labels(db)
    operator_ns = (spec["components"].get("cloudnative_pg") or {}).get("namespace", "cnpg-system")
    peers = [{"podSelector": {"matchLabels": dict(postgres)}}]
    return [
        _pod_policy("allow-kong-to-postgres", ns, chart_labels(), "Egress",
                    [{"podSelector": {"matchLabels": dict(postgres)}}], [POSTGRES_PORT]),
        _pod_policy("allow-postgres-from-kong", ns, postgres, "Ingress",
                    [{"podSelector": {"matchLabels": chart_labels()}}], [POSTGRES_PORT]),
        # Replication between the instances, and their status endpoint during failover.
        _pod_policy("allow-postgres-peers-in", ns, postgres, "Ingress", peers,
                    [POSTGRES_PORT, CNPG_STATUS_PORT]),
        _pod_policy("allow-postgres-peers-out", ns, postgres, "Egress", peers,
                    [POSTGRES_PORT, CNPG_STATUS_PORT]),
        common.allow_from("allow-postgres-from-operator", ns, postgres, [operator_ns],
                          [CNPG_STATUS_PORT, POSTGRES_PORT]),
    ] + _backup_policies(spec, settings)


def _backup_policies(spec, settings):
    db = settings["database"]
    chosen = cnpg_backup.method(spec, db["backup"], _database_storage_class(spec, db))
    if chosen != "object_store":
        return []
    return [cnpg_backup.object_store_egress(spec, _cluster_labels(db), settings["namespace"])]


def _pod_policy(name, namespace, pod_selector, direction, peers, ports):
    """A one-rule policy between pods of the same namespace."""
    rule = {"ports": common.tcp_ports(*ports), "from" if direction == "Ingress" else "to": peers}
    return common.network_policy(name, namespace, pod_selector, **{direction.lower(): [rule]})


def _external_network(db):
    if db["network"]:
        return db["network"]
    try:
        address = ipaddress.ip_address(db["host"])
    except ValueError:
        # A DNS name cannot be expressed in a NetworkPolicy: allow the port only.
        return "0.0.0.0/0"
    return "%s/%d" % (address, address.max_prefixlen)


def _app_egress(spec, ns):
    """Kong proxies to the business apps: their namespaces, on their ports."""
    ports = {}
    for app in spec["apps"]:
        ports.setdefault(app["namespace"], set()).add(app["port"])
    return [
        common.allow_to("allow-to-%s" % app_ns, ns, proxy_labels(), [app_ns], sorted(app_ports))
        for app_ns, app_ports in sorted(ports.items())
    ]


# --- cross-checks -----------------------------------------------------------------

def _check_proxy_service(spec, settings, errors, path):
    # On bare metal nothing hands a LoadBalancer Service an address unless a pool is declared;
    # Argo CD reports such a Service Progressing forever and every later wave waits behind it.
    if settings["proxy_service_type"] != "LoadBalancer" or not common.enabled(spec, "cilium"):
        return
    if not spec["components"]["cilium"].get("load_balancer"):
        errors.add(path + ".proxy_service_type", "LoadBalancer",
                   "a LoadBalancer Service gets an address on bare metal only from an address pool: set "
                   "plinth_components.cilium.load_balancer.addresses, or use ClusterIP (the tunnel's way in) "
                   "or NodePort")


def check(spec, settings, errors, path):
    _check_proxy_service(spec, settings, errors, path)
    common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])
    db = settings.get("database")
    if not db:
        return
    dbpath = path + ".database"
    if not common.enabled(spec, "external_secrets"):
        errors.add(dbpath + ".mode", db["mode"], "the database password comes from Vault through an "
                   "ExternalSecret: needs plinth_components.external_secrets.enabled: true")
    if db["mode"] == "external":
        if not db["host"]:
            errors.add(dbpath + ".host", db["host"], "is required when database.mode is 'external'")
        return
    if db["host"]:
        errors.add(dbpath + ".host", db["host"], "is only used when database.mode is 'external'")
    if not common.enabled(spec, "cloudnative_pg"):
        errors.add(dbpath + ".mode", db["mode"], "needs plinth_components.cloudnative_pg.enabled: true "
                   "(or database.mode: external)")
    if db["pool"] not in spec["node_pools"]:
        errors.add(dbpath + ".pool", db["pool"],
                   "no such node pool (known: %s)" % ", ".join(sorted(spec["node_pools"])))
    else:
        common.check_fits_pool(spec, {"pool": db["pool"]}, errors, dbpath + ".instances",
                               db["instances"], what="PostgreSQL instances")
    cnpg_backup.check(spec, db["backup"], db["cluster_name"], _database_storage_class(spec, db), errors,
                      dbpath + ".backup", dbpath + ".cluster_name")
    if db["restore_target_time"] and not db["restore_from"]:
        errors.add(dbpath + ".restore_target_time", db["restore_target_time"],
                   "is the end of a restore: needs database.restore_from")


COMPONENT = Component(
    key="kong", title="Kong Gateway", namespace="kong", project="platform", pool="gateway",
    enabled=True, pod_security="restricted",
    options={
        "replicas": s.Int(3, minimum=1, doc="gateway pods, at most one per host of the pool"),
        "proxy_service_type": s.Str("ClusterIP", choices=("ClusterIP", "NodePort", "LoadBalancer"),
                                    doc="type of the proxy Service; ClusterIP needs nothing outside the cluster "
                                        "(the Cloudflare tunnel reaches it), LoadBalancer needs an address pool "
                                        "(plinth_components.cilium.load_balancer)"),
        "resources": s.Resources("500m", "512Mi", "2", "2Gi"),
        "controller_resources": s.Resources("100m", "128Mi", "500m", "512Mi"),
        "database": DATABASE,
    },
    check=check,
    releases=[Release(RELEASE, 60, CHART, values=values, manifests=manifests)],
    doc="Kong Gateway with its ingress controller; PostgreSQL from CloudNativePG or an external server.",
)

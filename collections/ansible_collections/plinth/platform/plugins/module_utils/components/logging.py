# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Logs: Loki on the component's pool, and Fluent Bit on every node shipping to it.

Off by default.  Loki runs as one single-binary pod (``SingleBinary`` mode) that keeps
its chunks and index on a ReadWriteOnce volume of the Ceph StorageClass: filesystem
storage, no object store, so the chart refuses a second replica and so does the
inventory check.  Retention is enforced by Loki's compactor.  Everything else the chart
would deploy by default (the nginx gateway, memcached caches, the canary and its
``helm test`` pod, the rules sidecar, self-monitoring through the Grafana Agent
operator, whose CRDs the cluster does not have) is switched off.

Fluent Bit, a DaemonSet tolerating every pool's taints and the control plane's, tails
``/var/log/containers`` and the kubelet's journal and pushes to Loki's push API.  It
reads those files through hostPath volumes, which only the ``privileged`` Pod Security
level admits (``baseline`` forbids hostPath volumes): the namespace is labelled
``privileged``, and its NetworkPolicies keep it closed all the same.

When monitoring runs Grafana, a ConfigMap in monitoring's namespace adds Loki as a
data source: kube-prometheus-stack's Grafana sidecar loads ConfigMaps labelled
``grafana_datasource: "1"`` from Grafana's own namespace.
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common, monitoring

__metaclass__ = type

LOKI = "loki"
COLLECTOR = "fluent-bit"
LOKI_PORT = 3100          # HTTP: push API, queries and /metrics
LOKI_GRPC_PORT = 9095
MEMBERLIST_PORT = 7946
COLLECTOR_METRICS_PORT = 2020
PUSH_PATH = "/loki/api/v1/push"
# The chart's selector labels: release name == chart name, so both read "loki" / "fluent-bit".
LOKI_SELECTOR = {"app.kubernetes.io/name": LOKI, "app.kubernetes.io/instance": LOKI}
COLLECTOR_SELECTOR = {"app.kubernetes.io/name": COLLECTOR, "app.kubernetes.io/instance": COLLECTOR}
# Loki's schema and index period: fixed, since changing either needs a new schema entry.
SCHEMA = {"from": "2024-04-01", "store": "tsdb", "object_store": "filesystem", "schema": "v13",
          "index": {"prefix": "index_", "period": "24h"}}
DAY = 24 * 3600
# Where Fluent Bit keeps its read positions on the host, so a restarted pod resumes instead of skipping.
STATE_DIR = "/var/lib/fluent-bit"
DATASOURCE_CONFIG_MAP = "loki-datasource"
# The Grafana chart's name label, as kube-prometheus-stack deploys it.
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana"}
_UNIT_SECONDS = {"y": 365 * DAY, "w": 7 * DAY, "d": DAY, "h": 3600, "m": 60, "s": 1, "ms": 0.001}


def _seconds(duration):
    return sum(int(n) * _UNIT_SECONDS[unit] for n, unit in re.findall(r"([0-9]+)(ms|y|w|d|h|m|s)", duration))


def whole_days(value):
    if s.duration(value) is None and _seconds(value) % DAY:
        return "must be a whole number of days (Loki deletes by 24h index period), like 14d or 720h"
    return None


OPTIONS = {
    "retention": s.Str("14d", checks=[s.duration, whole_days],
                       doc="How long Loki keeps logs; its compactor deletes older ones."),
    "replicas": s.Int(1, minimum=1, doc="Loki pods; filesystem storage allows one."),
    "storage": s.Str("50Gi", checks=[s.quantity], doc="PVC size of the Loki pod (chunks and index)."),
    "storage_class": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                           doc="StorageClass of Loki's PVC; default: rook_ceph.storage_class when Rook-Ceph "
                               "is enabled. One of the two is required."),
    "grafana_datasource": s.Bool(True, doc="Add Loki as a Grafana data source when monitoring runs Grafana."),
}


def storage_class(spec, settings):
    return common.storage_class(spec, settings.get("storage_class"))


def loki_url(settings):
    """Loki's in-cluster HTTP address: the single-binary Service the chart names after the release."""
    return "http://%s.%s.svc:%d" % (LOKI, settings["namespace"], LOKI_PORT)


def _persistence(spec, settings):
    persistence = {"enabled": True, "accessModes": ["ReadWriteOnce"], "size": settings["storage"],
                   # The chart would have Kubernetes delete the volume with the StatefulSet: a re-created
                   # StatefulSet must find the logs where it left them.
                   "enableStatefulSetAutoDeletePVC": False}
    klass = storage_class(spec, settings)
    if klass:
        persistence["storageClass"] = klass
    return persistence


def _loki_config(settings):
    return {
        # One tenant: no X-Scope-OrgID header for the collector or Grafana to agree on.
        "auth_enabled": False,
        "commonConfig": {"replication_factor": 1},
        "storage": {"type": "filesystem"},
        "schemaConfig": {"configs": [dict(SCHEMA)]},
        "limits_config": {"retention_period": settings["retention"]},
        "compactor": {"retention_enabled": True, "delete_request_store": "filesystem"},
        # Egress is closed anyway; this keeps Loki from retrying the usage report forever.
        "analytics": {"reporting_enabled": False},
    }


def loki_values(spec, settings):
    metrics = common.enabled(spec, "monitoring")
    return {
        "deploymentMode": "SingleBinary",
        "loki": _loki_config(settings),
        "singleBinary": dict(common.placement(spec, settings["pool"]), **{
            "replicas": settings["replicas"],
            "persistence": _persistence(spec, settings),
        }),
        # The scalable targets default to three replicas each.
        "read": {"replicas": 0},
        "write": {"replicas": 0},
        "backend": {"replicas": 0},
        "gateway": {"enabled": False},
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
        "minio": {"enabled": False},
        "rollout_operator": {"enabled": False},
        "sidecar": {"rules": {"enabled": False}},
        # Without the rules sidecar nothing in the pod talks to the API server.
        "serviceAccount": {"automountServiceAccountToken": False},
        "monitoring": {
            "dashboards": {"enabled": False},
            "rules": {"enabled": False},
            "selfMonitoring": {"enabled": False, "grafanaAgent": {"installOperator": False}},
            # metricsInstance is a Grafana Agent operator object; Prometheus reads the ServiceMonitor.
            "serviceMonitor": {"enabled": metrics, "metricsInstance": {"enabled": False}},
        },
    }


def _section(name, **entries):
    """One classic-format Fluent Bit section, keys in a fixed order."""
    return "[%s]\n" % name + "".join("    %s %s\n" % (key, value) for key, value in entries.items())


def _inputs():
    return _section("INPUT", Name="tail", Tag="kube.*", Path="/var/log/containers/*.log",
                    **{"multiline.parser": "cri, docker"}, DB=STATE_DIR + "/tail.db",
                    Mem_Buf_Limit="5MB", Skip_Long_Lines="On") + \
        _section("INPUT", Name="systemd", Tag="host.*", Systemd_Filter="_SYSTEMD_UNIT=kubelet.service",
                 DB=STATE_DIR + "/systemd.db", Read_From_Tail="On")


def _filters():
    return _section("FILTER", Name="kubernetes", Match="kube.*", Merge_Log="On", Keep_Log="Off",
                    **{"K8S-Logging.Parser": "On", "K8S-Logging.Exclude": "On"})


def _outputs(spec, settings):
    host = "%s.%s.svc" % (LOKI, settings["namespace"])
    common_keys = dict(Host=host, Port=LOKI_PORT, Uri=PUSH_PATH, Line_Format="json")
    cluster = spec["cluster_name"]
    return _section("OUTPUT", Name="loki", Match="kube.*", Labels="job=fluent-bit, cluster=%s" % cluster,
                    Label_Keys="$kubernetes['namespace_name'],$kubernetes['pod_name'],"
                               "$kubernetes['container_name'],$kubernetes['host']",
                    **common_keys) + \
        _section("OUTPUT", Name="loki", Match="host.*", Labels="job=systemd, cluster=%s" % cluster,
                 Label_Keys="$_HOSTNAME,$_SYSTEMD_UNIT", **common_keys)


def _host_volumes():
    """/var/log read-only (containerd's logs and the journal), machine-id for the journal, and the
    collector's own position files."""
    volumes = [
        {"name": "varlog", "hostPath": {"path": "/var/log", "type": "Directory"}},
        {"name": "etcmachineid", "hostPath": {"path": "/etc/machine-id", "type": "File"}},
        {"name": "state", "hostPath": {"path": STATE_DIR, "type": "DirectoryOrCreate"}},
    ]
    mounts = [
        {"name": "varlog", "mountPath": "/var/log", "readOnly": True},
        {"name": "etcmachineid", "mountPath": "/etc/machine-id", "readOnly": True},
        {"name": "state", "mountPath": STATE_DIR},
    ]
    return volumes, mounts


def collector_values(spec, settings):
    volumes, mounts = _host_volumes()
    metrics = common.enabled(spec, "monitoring")
    return {
        "kind": "DaemonSet",
        # Every node, the control plane included: logs of every pool end up in Loki.
        "tolerations": monitoring.node_exporter_tolerations(spec),
        # Replaces the chart's list, which also mounts Docker's container folder.
        "daemonSetVolumes": volumes,
        "daemonSetVolumeMounts": mounts,
        "testFramework": {"enabled": False},
        "serviceMonitor": {"enabled": metrics},
        "config": {"inputs": _inputs(), "filters": _filters(), "outputs": _outputs(spec, settings)},
    }


def _datasource_config_map(spec, settings):
    datasources = {"apiVersion": 1, "datasources": [{
        "name": "Loki", "type": "loki", "uid": "loki", "access": "proxy",
        "url": loki_url(settings), "isDefault": False, "editable": False,
    }]}
    namespace = spec["components"]["monitoring"]["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(DATASOURCE_CONFIG_MAP, namespace, labels={"grafana_datasource": "1"}),
        # JSON is YAML: Grafana reads it as a provisioning file.
        "data": {"loki.yaml": json.dumps(datasources, indent=2, sort_keys=True) + "\n"},
    }


def grafana_runs(spec):
    monitoring_settings = spec["components"].get("monitoring") or {}
    return bool(monitoring_settings.get("enabled") and (monitoring_settings.get("grafana") or {}).get("enabled"))


def _loki_ingress(spec, settings):
    namespace = settings["namespace"]
    rules = [
        common.network_policy("allow-collector", namespace, LOKI_SELECTOR, ingress=[{
            "from": [common.namespace_peer(namespace, COLLECTOR_SELECTOR)],
            "ports": common.tcp_ports(LOKI_PORT),
        }]),
        # The single binary's query frontend, querier and ring reach the pod itself over its own IP.
        common.network_policy("allow-loki-self", namespace, LOKI_SELECTOR, ingress=[{
            "from": [common.namespace_peer(namespace, LOKI_SELECTOR)],
            "ports": common.tcp_ports(LOKI_PORT, LOKI_GRPC_PORT, MEMBERLIST_PORT),
        }], egress=[{
            "to": [common.namespace_peer(namespace, LOKI_SELECTOR)],
            "ports": common.tcp_ports(LOKI_PORT, LOKI_GRPC_PORT, MEMBERLIST_PORT),
        }]),
    ]
    if common.enabled(spec, "monitoring"):
        # Grafana queries and Prometheus scrapes, both from monitoring's namespace, on the one HTTP port.
        rules.append(common.allow_from("allow-monitoring", namespace, LOKI_SELECTOR,
                                       [spec["components"]["monitoring"]["namespace"]], [LOKI_PORT]))
    return rules


def _collector_policies(spec, settings):
    namespace = settings["namespace"]
    rules = [
        common.network_policy("allow-collector-to-loki", namespace, COLLECTOR_SELECTOR, egress=[{
            "to": [common.namespace_peer(namespace, LOKI_SELECTOR)],
            "ports": common.tcp_ports(LOKI_PORT),
        }]),
    ]
    # The kubernetes filter reads pod metadata from the API.
    apiserver = common.allow_apiserver(spec, namespace, COLLECTOR_SELECTOR)
    apiserver["metadata"]["name"] = "allow-collector-apiserver"
    rules.append(apiserver)
    if common.enabled(spec, "monitoring"):
        rules.append(common.allow_from("allow-collector-metrics", namespace, COLLECTOR_SELECTOR,
                                       [spec["components"]["monitoring"]["namespace"]], [COLLECTOR_METRICS_PORT]))
    return rules


def network_policies(spec, settings):
    return common.baseline_policies(settings["namespace"]) + _loki_ingress(spec, settings) + \
        _collector_policies(spec, settings)


def _grafana_egress(spec, settings):
    """Grafana's way out to Loki, in monitoring's namespace: policies add up, so monitoring's own
    egress rules for Grafana need not know about logging."""
    return common.network_policy("allow-grafana-to-loki", spec["components"]["monitoring"]["namespace"],
                                 GRAFANA_PODS, egress=[{
                                     "to": [common.namespace_peer(settings["namespace"], LOKI_SELECTOR)],
                                     "ports": common.tcp_ports(LOKI_PORT),
                                 }])


def loki_manifests(spec, settings):
    """The namespace's policies (both releases' pods) and, with Grafana, its data source and its
    egress to Loki."""
    docs = network_policies(spec, settings)
    if settings["grafana_datasource"] and grafana_runs(spec):
        docs += [_datasource_config_map(spec, settings), _grafana_egress(spec, settings)]
    return docs


def check(spec, settings, errors, path):
    if not storage_class(spec, settings):
        errors.add(path + ".storage_class", None,
                   "Loki keeps logs on a PersistentVolumeClaim: set storage_class, or enable "
                   "plinth_components.rook_ceph for its StorageClass")
    if settings["replicas"] > 1:
        errors.add(path + ".replicas", settings["replicas"],
                   "Loki on filesystem storage runs one replica (each pod would keep logs of its own); "
                   "set 1")


COMPONENT = Component(
    key="logging", title="Loki and Fluent Bit", namespace="logging", project="platform",
    pool="worker", enabled=False,
    # Fluent Bit reads the hosts' logs through hostPath volumes, which no lower level admits.
    pod_security="privileged",
    options=OPTIONS,
    check=check,
    releases=[
        # After Ceph's StorageClass (wave 20) and the monitoring CRDs (wave 5).
        Release(LOKI, 60, {"repo": "https://grafana.github.io/helm-charts", "name": "loki", "version": "7.3.0"},
                values=loki_values, manifests=loki_manifests),
        # After Loki, so the first pushes find it.
        Release(COLLECTOR, 65, {"repo": "https://fluent.github.io/helm-charts", "name": "fluent-bit",
                                "version": "0.58.1"},
                values=collector_values, chart_option="collector_chart"),
    ],
    doc="Loki (single binary, Ceph-backed) with Fluent Bit on every node; Grafana data source when "
        "monitoring runs Grafana.",
)

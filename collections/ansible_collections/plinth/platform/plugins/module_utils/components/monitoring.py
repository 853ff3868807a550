# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kube-prometheus-stack: Prometheus, Alertmanager and Grafana on the worker pool.

Two releases: ``prometheus-operator-crds`` goes early (wave 10) so that every
other component may ship ServiceMonitors and PodMonitors; the stack itself
then runs with its own CRD subchart disabled.
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress

from ansible_collections.plinth.platform.plugins.module_utils import placement, schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

CHARTS = "https://prometheus-community.github.io/helm-charts"
GRAFANA_ADMIN_SECRET = "grafana-admin"
# Share of the PVC that Prometheus may fill before it drops old blocks early:
# the WAL and compaction need head room beyond the retained blocks.
RETENTION_SIZE_SHARE = 0.85
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}

OPTIONS = {
    "retention": s.Str("30d", checks=[s.duration], doc="How long Prometheus keeps samples."),
    "prometheus_replicas": s.Int(2, minimum=1, doc="Prometheus pods, one per worker host."),
    "alertmanager_replicas": s.Int(2, minimum=1, doc="Alertmanager pods, one per worker host."),
    "prometheus_storage": s.Str("50Gi", checks=[s.quantity], doc="PVC size of each Prometheus pod."),
    "alertmanager_storage": s.Str("10Gi", checks=[s.quantity], doc="PVC size of each Alertmanager pod."),
    "storage_class": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                           doc="StorageClass of every monitoring PVC; default: rook_ceph.storage_class "
                               "when Rook-Ceph is enabled, else the cluster default."),
    "control_plane_metrics": s.Bool(False, doc="Scrape kube-controller-manager, kube-scheduler, etcd and "
                                               "kube-proxy; needs their metrics bound beyond 127.0.0.1."),
    "grafana": s.Dict({
        "enabled": s.Bool(True),
        "storage": s.Str("10Gi", nullable=True, checks=[s.quantity],
                         doc="PVC size for Grafana's database; null keeps it on an emptyDir."),
        "admin_user": s.Str("admin"),
        "vault_path": s.Str("platform/monitoring/grafana",
                            doc="Vault KV path whose property 'admin-password' is Grafana's admin password."),
    }),
}


def storage_class(spec, settings):
    """The StorageClass for monitoring PVCs, or None for the cluster default."""
    return common.storage_class(spec, settings.get("storage_class"))


def _claim(spec, settings, size):
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    klass = storage_class(spec, settings)
    if klass:
        claim["storageClassName"] = klass
    return {"volumeClaimTemplate": {"spec": claim}}


def quantity_bytes(quantity):
    """A Kubernetes quantity in bytes, or None when it is not one."""
    match = s.QUANTITY.match(quantity or "")
    if not match:
        return None
    number, suffix = match.groups()
    suffix = suffix or ""
    if suffix[:1] in ("e", "E"):
        return float(number + suffix)
    if suffix == "m":
        return float(number) / 1000
    return float(number) * _BINARY.get(suffix, _DECIMAL.get(suffix, 1))


def retention_size(quantity):
    """Prometheus retentionSize (its MB are MiB) for a PVC of ``quantity``, or None."""
    megabytes = int((quantity_bytes(quantity) or 0) * RETENTION_SIZE_SHARE / 2 ** 20)
    return "%dMB" % megabytes if megabytes > 0 else None


def _scheduling(spec, settings):
    """nodeSelector/tolerations of the component's pool, for any chart that takes both keys."""
    return common.placement(spec, settings["pool"])


def node_exporter_tolerations(spec):
    """node-exporter belongs on every node: tolerate each pool's taints and the control plane's."""
    found = {}
    for name in sorted(spec["node_pools"]):
        for toleration in common.tolerations(spec, name):
            found[(toleration["key"], toleration["value"], toleration["effect"])] = toleration
    return [found[k] for k in sorted(found)] + [dict(placement.CONTROL_PLANE_TOLERATION)]


def _prometheus(spec, settings):
    pdb_min = common.pdb_min_available(settings["prometheus_replicas"])
    prom_spec = dict(_scheduling(spec, settings), **{
        "replicas": settings["prometheus_replicas"],
        "retention": settings["retention"],
        "storageSpec": _claim(spec, settings, settings["prometheus_storage"]),
        "podAntiAffinity": "hard",
        "podAntiAffinityTopologyKey": "kubernetes.io/hostname",
        "externalLabels": {"cluster": spec["cluster_name"]},
    })
    size = retention_size(settings["prometheus_storage"])
    if size:
        prom_spec["retentionSize"] = size
    # An empty selector with NilUsesHelmValues false selects every object in
    # every namespace: other components' monitors and rules need no release label.
    for kind in ("serviceMonitor", "podMonitor", "rule", "probe", "scrapeConfig"):
        prom_spec[kind + "SelectorNilUsesHelmValues"] = False
        prom_spec[kind + "Selector"] = {}
        prom_spec[kind + "NamespaceSelector"] = {}
    return {
        "prometheusSpec": prom_spec,
        "podDisruptionBudget": {"enabled": settings["prometheus_replicas"] > 1, "minAvailable": pdb_min},
        # One client keeps to one replica: the replicas scrape at different instants,
        # so alternating between them makes Grafana's graphs jitter.
        "service": {"sessionAffinity": "ClientIP"},
    }


def _alertmanager(spec, settings):
    replicas = settings["alertmanager_replicas"]
    am_spec = dict(_scheduling(spec, settings), **{
        "replicas": replicas,
        "storage": _claim(spec, settings, settings["alertmanager_storage"]),
        "podAntiAffinity": "hard",
        "podAntiAffinityTopologyKey": "kubernetes.io/hostname",
    })
    return {
        "alertmanagerSpec": am_spec,
        "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": common.pdb_min_available(replicas)},
    }


def _grafana(spec, settings):
    grafana = settings["grafana"]
    if not grafana["enabled"]:
        return {"enabled": False}
    values = dict(_scheduling(spec, settings), **{
        "enabled": True,
        "defaultDashboardsEnabled": True,
        # A `helm test` hook pod: no part of a GitOps sync.
        "testFramework": {"enabled": False},
        "admin": {"existingSecret": GRAFANA_ADMIN_SECRET, "userKey": "admin-user", "passwordKey": "admin-password"},
        "sidecar": {
            "dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1", "searchNamespace": "ALL"},
        },
    })
    if grafana["storage"]:
        persistence = {"enabled": True, "type": "pvc", "accessModes": ["ReadWriteOnce"], "size": grafana["storage"]}
        klass = storage_class(spec, settings)
        if klass:
            persistence["storageClassName"] = klass
        values["persistence"] = persistence
        # A ReadWriteOnce volume cannot follow a surge pod to another host.
        values["deploymentStrategy"] = {"type": "Recreate"}
    return values


def control_plane_addresses(spec):
    """IP addresses of the control-plane hosts; None when one of them is a DNS name.

    Endpoints objects take IPs only; fixed endpoints also keep a dead host as a
    failing target instead of letting it vanish with its mirror pod.
    """
    addresses = []
    for host in spec["control_plane"]["hosts"]:
        address = spec["hosts"][host]["address"]
        try:
            addresses.append(str(ipaddress.ip_address(address)))
        except ValueError:
            return None
    return addresses


def _control_plane(spec, settings):
    """kubeadm binds these metrics to 127.0.0.1 unless told otherwise: scrape them only when asked."""
    enabled = settings["control_plane_metrics"]
    # With Cilium's kube-proxy replacement there is no kube-proxy to scrape.
    kube_proxy = enabled and not (spec["components"].get("cilium") or {}).get("kube_proxy_replacement")
    values = {
        "kubeControllerManager": {"enabled": enabled},
        "kubeScheduler": {"enabled": enabled},
        "kubeEtcd": {"enabled": enabled},
        "kubeProxy": {"enabled": bool(kube_proxy)},
    }
    addresses = control_plane_addresses(spec) if enabled else None
    if addresses:
        for key in ("kubeControllerManager", "kubeScheduler", "kubeEtcd"):
            values[key]["endpoints"] = addresses
    return values


def stack_values(spec, settings):
    values = {
        # prometheus-operator-crds provides them, earlier and for everyone.
        "crds": {"enabled": False},
        "prometheus": _prometheus(spec, settings),
        "alertmanager": _alertmanager(spec, settings),
        "grafana": _grafana(spec, settings),
        "prometheusOperator": dict(_scheduling(spec, settings), admissionWebhooks={
            "patch": _scheduling(spec, settings),
        }),
        "kube-state-metrics": _scheduling(spec, settings),
        "prometheus-node-exporter": {"tolerations": node_exporter_tolerations(spec)},
    }
    values.update(_control_plane(spec, settings))
    return values


def stack_manifests(spec, settings):
    grafana = settings["grafana"]
    if not grafana["enabled"]:
        return []
    return [common.external_secret(
        spec, GRAFANA_ADMIN_SECRET, settings["namespace"],
        {"admin-password": (grafana["vault_path"], "admin-password")},
        # The user name is not secret: the template adds it next to the password from Vault.
        template={"engineVersion": "v2", "mergePolicy": "Merge", "data": {"admin-user": grafana["admin_user"]}},
    )]


def crds_values(spec, settings):
    # Deleting these CRDs would delete every monitor and rule of every component with them.
    return {"crds": {"annotations": {"argocd.argoproj.io/sync-options": "Prune=false,Delete=false"}}}


def check(spec, settings, errors, path):
    # The chart's hard anti-affinity puts each replica on its own host.
    common.check_fits_pool(spec, settings, errors, path + ".prometheus_replicas",
                           settings["prometheus_replicas"], "Prometheus replicas")
    common.check_fits_pool(spec, settings, errors, path + ".alertmanager_replicas",
                           settings["alertmanager_replicas"], "Alertmanager replicas")
    eso = spec["components"].get("external_secrets") or {}
    if settings["grafana"]["enabled"] and not eso.get("enabled"):
        errors.add(path + ".grafana.enabled", True,
                   "the Grafana admin password comes from Vault through an ExternalSecret: "
                   "needs plinth_components.external_secrets.enabled: true")


COMPONENT = Component(
    key="monitoring", title="kube-prometheus-stack", namespace="monitoring", project="platform",
    pool="worker", enabled=True,
    # node-exporter needs the host's network, PID namespace and root filesystem.
    pod_security="privileged",
    options=OPTIONS,
    check=check,
    releases=[
        # Before every operator, so their ServiceMonitors and PodMonitors sync on the first try.
        Release("prometheus-operator-crds", 5,
                {"repo": CHARTS, "name": "prometheus-operator-crds", "version": "31.0.1"},
                values=crds_values, chart_option="crds_chart", server_side_apply=True),
        Release("kube-prometheus-stack", 60,
                {"repo": CHARTS, "name": "kube-prometheus-stack", "version": "88.5.3"},
                values=stack_values, manifests=stack_manifests, server_side_apply=True),
    ],
    doc="Prometheus and Alertmanager (HA, Ceph-backed), Grafana with dashboards, node-exporter everywhere.",
)

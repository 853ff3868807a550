# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Requests and limits of every platform workload: one table, read by the render and the checks.

``TABLE`` maps each release name to the workloads Plinth sizes in it.  A workload is
one container of one kind of pod (several ``paths`` when identical containers share
the pod), with:

* the Helm values path(s) that take its ``resources`` (none for raw manifests, whose
  module reads ``resources(settings, release, name)`` itself);
* its default requests and limits;
* how many pods run on which node pool, for the capacity check
  (``plinth_node_pools.<pool>.capacity``);
* when it runs at all (Hubble UI, Dex, the Vault injector... only when enabled).

The inventory changes a workload under ``plinth_components.<key>.resources.<workload>``,
key by key over the default (``requests.memory`` alone keeps the default CPU request).
A component that already declares its own ``resources`` option (a single
``{requests, limits}`` for its main container) keeps it: the table names that option
(``option``) instead of holding a default, so the number lives in one place.

Policy: every container requests CPU and memory and has a memory limit; CPU limits are
left out.  CPU is compressible: a container over its request only slows when the node is
busy, and then in proportion to its request, while a CFS quota throttles it even on an
idle node; the latency this adds to API servers, webhooks and the CNI is worse than the
noise it prevents.  Memory is not compressible, and a pod without a limit is the one the
kernel kills for another's leak.  Where a pinned chart ships a CPU limit of its own
(kubelet-csr-approver, the ceph-csi-operator) the table states one too: Helm merges
values maps key by key, so leaving it out would keep the chart's.

Values are filled in by ``sized`` after the component built them, and only where the
component set no ``resources`` of its own.
"""

from __future__ import absolute_import, annotations, division, print_function

import copy

from ansible_collections.plinth.platform.plugins.module_utils import schema as s

__metaclass__ = type

# As the owning modules pin them: their pod counts are not options.
REDIS_HA_PODS = 3            # argocd.REDIS_HA_PODS
VAULT_INJECTOR_REPLICAS = 2  # vault.INJECTOR_REPLICAS
CSI_CONTROLLER_REPLICAS = 2  # rook_ceph.CSI_CONTROLLER_REPLICAS
MDS_PODS = 2                 # rook_ceph: one active metadata server and its standby
RGW_PODS = 2                 # rook_ceph: gateway instances


def res(cpu, memory, memory_limit, cpu_limit=None):
    """``{requests: {cpu, memory}, limits: {memory[, cpu]}}``."""
    limits = {"memory": memory_limit}
    if cpu_limit is not None:
        limits["cpu"] = cpu_limit
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}


class Workload:
    """One sized container kind: see the module docstring."""

    def __init__(self, name, paths=(), default=None, pods=None, when=None, option=None, overridable=True):
        self.name = name            # key under plinth_components.<key>.resources
        self.paths = tuple(paths)   # dotted Helm values paths, one per container of the pod
        self.default = default      # res(...), or None when ``option`` holds the numbers
        self.pods = pods            # f(spec, settings) -> {pool: pods}; None: not counted (Jobs)
        self.when = when            # f(settings) -> bool; None: always
        self.option = option        # settings keys of the component's own resources option
        self.overridable = overridable  # False: the module writes fixed numbers, only counted here

    def active(self, settings):
        return self.when is None or bool(self.when(settings))

    def containers(self):
        return max(1, len(self.paths))


# --- where pods run ---------------------------------------------------------------

def on_pool(count, pool_key="pool"):
    """``count(settings)`` pods on the pool named by ``settings[pool_key]`` (nowhere when unset)."""
    def pods(spec, settings):
        pool = settings.get(pool_key)
        return {pool: count(settings)} if pool else {}
    return pods


def fixed(number):
    return lambda settings: number


def setting(*keys):
    """The value of ``settings[keys[0]][keys[1]]...``."""
    def read(settings):
        for key in keys:
            settings = settings[key]
        return settings
    return read


def every_host(per_host=lambda settings: 1):
    """A DaemonSet that tolerates every pool's taints: ``per_host`` pods on each host of each pool."""
    def pods(spec, settings):
        return dict((name, len(pool.get("hosts") or []) * per_host(settings))
                    for name, pool in spec["node_pools"].items())
    return pods


def storage_hosts(per_host=lambda settings: 1):
    """Pods on each host of the component's (storage) pool."""
    def pods(spec, settings):
        pool = spec["node_pools"].get(settings.get("pool")) or {}
        return {settings["pool"]: len(pool.get("hosts") or []) * per_host(settings)} if pool else {}
    return pods


# --- what each component runs -----------------------------------------------------

def _hubble(settings):
    return settings["hubble"]


def _argocd_replicas(settings):
    return settings["replicas"] if settings["ha"] else 1


def _csi_drivers(settings):
    return 2 if settings["filesystem"] else 1


def _csi_controllers(spec, settings):
    pool = spec["node_pools"].get(settings.get("pool")) or {}
    replicas = max(1, min(CSI_CONTROLLER_REPLICAS, len(pool.get("hosts") or [])))
    return {settings["pool"]: replicas * _csi_drivers(settings)} if pool else {}


def _osds_per_host(settings):
    # With useAllDevices the disks are not known here: one OSD per host is the least there is.
    return max(1, len(settings["devices"]))


def _monitoring_replicas(settings):
    return settings["prometheus_replicas"] + settings["alertmanager_replicas"]


def _grafana(settings):
    return settings["grafana"]["enabled"]


def _cnpg_database(settings):
    return settings["database"]["mode"] == "cloudnative-pg"


CSI_DEFAULTS = "operatorConfig.driverSpecDefaults."

TABLE = {
    "cilium": [
        Workload("agent", ["resources"], res("200m", "512Mi", "2Gi"), every_host()),
        Workload("envoy", ["envoy.resources"], res("50m", "128Mi", "512Mi"), every_host()),
        Workload("operator", ["operator.resources"], res("50m", "128Mi", "512Mi"),
                 on_pool(setting("operator_replicas"), "operator_pool")),
        Workload("hubble_relay", ["hubble.relay.resources"], res("50m", "64Mi", "256Mi"),
                 on_pool(fixed(1), "operator_pool"), when=_hubble),
        Workload("hubble_ui", ["hubble.ui.backend.resources", "hubble.ui.frontend.resources"],
                 res("20m", "64Mi", "256Mi"), on_pool(fixed(1), "operator_pool"),
                 when=lambda settings: settings["hubble"] and settings["hubble_ui"]),
    ],
    "cilium-monitoring": [],
    "argo-cd": [
        Workload("controller", ["controller.resources"], res("250m", "1Gi", "2Gi"),
                 on_pool(setting("controller_replicas"))),
        Workload("server", ["server.resources"], res("50m", "128Mi", "512Mi"), on_pool(_argocd_replicas)),
        Workload("repo_server", ["repoServer.resources"], res("100m", "256Mi", "1Gi"), on_pool(_argocd_replicas)),
        Workload("applicationset", ["applicationSet.resources"], res("50m", "128Mi", "512Mi"),
                 on_pool(_argocd_replicas)),
        Workload("notifications", ["notifications.resources"], res("20m", "64Mi", "256Mi"), on_pool(fixed(1))),
        Workload("dex", ["dex.resources"], res("10m", "64Mi", "256Mi"), on_pool(fixed(1)),
                 when=setting("dex")),
        Workload("redis", ["redis.resources"], res("50m", "128Mi", "512Mi"), on_pool(fixed(1)),
                 when=lambda settings: not settings["ha"]),
        Workload("redis_ha", ["redis-ha.redis.resources"], res("100m", "256Mi", "1Gi"),
                 on_pool(fixed(REDIS_HA_PODS)), when=setting("ha")),
        Workload("redis_ha_sentinel", ["redis-ha.sentinel.resources"], res("20m", "32Mi", "128Mi"),
                 on_pool(fixed(REDIS_HA_PODS)), when=setting("ha")),
        Workload("redis_ha_haproxy", ["redis-ha.haproxy.resources"], res("50m", "64Mi", "256Mi"),
                 on_pool(fixed(REDIS_HA_PODS)), when=setting("ha")),
    ],
    "rook-ceph": [
        Workload("operator", ["resources"], res("200m", "256Mi", "1Gi"), on_pool(fixed(1))),
        Workload("csi_operator", ["ceph-csi-operator.controllerManager.manager.resources"],
                 res("10m", "64Mi", "256Mi", cpu_limit="500m"), on_pool(fixed(1))),
    ],
    "ceph-csi-drivers": [
        Workload("csi_node_plugin", [CSI_DEFAULTS + "nodePlugin.resources.plugin"], res("50m", "128Mi", "1Gi"),
                 every_host(_csi_drivers)),
        Workload("csi_node_registrar", [CSI_DEFAULTS + "nodePlugin.resources.registrar"],
                 res("10m", "32Mi", "128Mi"), every_host(_csi_drivers)),
        Workload("csi_controller_plugin", [CSI_DEFAULTS + "controllerPlugin.resources.plugin"],
                 res("50m", "128Mi", "1Gi"), _csi_controllers),
        Workload("csi_controller_sidecars", [CSI_DEFAULTS + "controllerPlugin.resources." + name for name in
                                             ("provisioner", "attacher", "resizer", "snapshotter")],
                 res("10m", "64Mi", "256Mi"), _csi_controllers),
    ],
    "rook-ceph-cluster": [
        Workload("mon", ["cephClusterSpec.resources.mon"], res("1", "1Gi", "2Gi"), on_pool(setting("mon_count"))),
        Workload("mgr", ["cephClusterSpec.resources.mgr"], res("500m", "512Mi", "1Gi"),
                 on_pool(setting("mgr_count"))),
        Workload("mgr_sidecar", ["cephClusterSpec.resources.mgr-sidecar"], res("100m", "40Mi", "100Mi"),
                 on_pool(setting("mgr_count"))),
        Workload("osd", ["cephClusterSpec.resources.osd"], res("1", "4Gi", "4Gi"), storage_hosts(_osds_per_host)),
        Workload("crashcollector", ["cephClusterSpec.resources.crashcollector"], res("100m", "60Mi", "60Mi"),
                 storage_hosts()),
        Workload("exporter", ["cephClusterSpec.resources.exporter"], res("50m", "50Mi", "128Mi"), storage_hosts()),
        Workload("toolbox", ["toolbox.resources"], res("100m", "128Mi", "1Gi"), on_pool(fixed(1)),
                 when=setting("toolbox")),
        # Written by rook_ceph itself inside list items, with these numbers: counted here, and open to
        # the inventory once the module reads resources(settings, "rook-ceph-cluster", name).
        Workload("mds", [], res("1000m", "4Gi", "4Gi"), on_pool(fixed(MDS_PODS)), when=setting("filesystem"),
                 overridable=False),
        Workload("rgw", [], res("1000m", "1Gi", "2Gi"), on_pool(fixed(RGW_PODS)), when=setting("object_store"),
                 overridable=False),
    ],
    "kubelet-csr-approver": [
        Workload("approver", ["resources"], res("50m", "64Mi", "128Mi", cpu_limit="500m"),
                 on_pool(setting("replicas"))),
    ],
    "metrics-server": [
        Workload("metrics_server", ["resources"], res("100m", "200Mi", "512Mi"), on_pool(setting("replicas"))),
    ],
    "prometheus-operator-crds": [],
    "kube-prometheus-stack": [
        Workload("prometheus", ["prometheus.prometheusSpec.resources"], res("500m", "2Gi", "4Gi"),
                 on_pool(setting("prometheus_replicas"))),
        Workload("alertmanager", ["alertmanager.alertmanagerSpec.resources"], res("20m", "64Mi", "256Mi"),
                 on_pool(setting("alertmanager_replicas"))),
        Workload("config_reloader", ["prometheusOperator.prometheusConfigReloader.resources"],
                 res("10m", "32Mi", "64Mi"), on_pool(_monitoring_replicas)),
        Workload("operator", ["prometheusOperator.resources"], res("100m", "128Mi", "512Mi"), on_pool(fixed(1))),
        Workload("admission_patch", ["prometheusOperator.admissionWebhooks.patch.resources"],
                 res("10m", "32Mi", "128Mi")),
        Workload("grafana", ["grafana.resources"], res("100m", "256Mi", "512Mi"), on_pool(fixed(1)),
                 when=_grafana),
        # The dashboards and datasources sidecars share one resources key.
        Workload("grafana_sidecar", ["grafana.sidecar.resources"] * 2, res("10m", "64Mi", "256Mi"),
                 on_pool(fixed(1)), when=_grafana),
        Workload("kube_state_metrics", ["kube-state-metrics.resources"], res("50m", "128Mi", "512Mi"),
                 on_pool(fixed(1))),
        Workload("node_exporter", ["prometheus-node-exporter.resources"], res("20m", "32Mi", "128Mi"),
                 every_host()),
    ],
    "loki": [
        Workload("loki", ["singleBinary.resources"], res("200m", "512Mi", "2Gi"), on_pool(setting("replicas"))),
    ],
    "fluent-bit": [
        Workload("fluent_bit", ["resources"], res("50m", "64Mi", "256Mi"), every_host()),
    ],
    "consul": [
        Workload("server", ["server.resources"], pods=on_pool(setting("replicas")), option=("resources",)),
    ],
    "vault": [
        Workload("server", ["server.resources"], pods=on_pool(setting("replicas")), option=("resources",)),
        Workload("injector", ["injector.resources"], res("50m", "64Mi", "256Mi"),
                 on_pool(fixed(VAULT_INJECTOR_REPLICAS)), when=setting("injector")),
    ],
    "external-secrets": [
        Workload("controller", ["resources"], res("50m", "128Mi", "512Mi"), on_pool(setting("replicas"))),
        Workload("webhook", ["webhook.resources"], res("20m", "64Mi", "256Mi"), on_pool(setting("replicas"))),
        Workload("cert_controller", ["certController.resources"], res("20m", "64Mi", "256Mi"),
                 on_pool(setting("replicas"))),
    ],
    "cloudnative-pg": [
        Workload("operator", ["resources"], pods=on_pool(setting("replicas")), option=("resources",)),
    ],
    "kong": [
        Workload("proxy", ["resources"], pods=on_pool(setting("replicas")), option=("resources",)),
        Workload("ingress_controller", ["ingressController.resources"], pods=on_pool(setting("replicas")),
                 option=("controller_resources",)),
        Workload("database", [], pods=lambda spec, settings: {settings["database"]["pool"]:
                                                              settings["database"]["instances"]},
                 when=_cnpg_database, option=("database", "resources")),
    ],
    "cloudflared": [
        Workload("cloudflared", [], pods=on_pool(setting("replicas")), option=("resources",)),
    ],
    "reloader": [
        Workload("reloader", ["reloader.deployment.resources"], pods=on_pool(setting("replicas")),
                 option=("resources",)),
    ],
    "snapshot-controller": [
        Workload("controller", ["controller.resources"], pods=on_pool(setting("replicas")), option=("resources",)),
    ],
}


# --- the inventory option ---------------------------------------------------------

def workloads(component):
    """The table's workloads of every release of ``component``, in table order."""
    return [w for release in component.releases for w in TABLE.get(release.name, [])]


def _override_field(default):
    def quantity(value, nullable=False):
        return s.Str(value, nullable=nullable, checks=[s.quantity])
    return s.Dict({
        "requests": s.Dict({"cpu": quantity(default["requests"]["cpu"]),
                            "memory": quantity(default["requests"]["memory"])}),
        "limits": s.Dict({"cpu": quantity(default["limits"].get("cpu"), nullable=True),
                          "memory": quantity(default["limits"].get("memory"), nullable=True)}),
    })


def option_field(component):
    """The ``resources`` option of ``component``, or None when it declares its own or sizes nothing."""
    if "resources" in component.options:
        return None
    sized = [w for w in workloads(component) if w.option is None and w.overridable]
    if not sized:
        return None
    return s.Dict(dict((w.name, _override_field(w.default)) for w in sized),
                  doc="requests and limits per workload (%s), each key over its default; a null limit "
                      "sets none" % ", ".join(w.name for w in sized))


# --- reading and writing resources ------------------------------------------------

def _clean(resources):
    """``resources`` without null quantities or empty sections, as Kubernetes takes them."""
    found = {}
    for section in ("requests", "limits"):
        values = dict((k, v) for k, v in sorted(((resources or {}).get(section) or {}).items()) if v is not None)
        if values:
            found[section] = values
    return found


def _workload(release_name, name):
    for workload in TABLE.get(release_name, []):
        if workload.name == name:
            return workload
    raise KeyError("release %r sizes no workload %r (known: %s)"
                   % (release_name, name, ", ".join(w.name for w in TABLE.get(release_name, []))))


def workload_resources(settings, workload):
    """The requests and limits ``workload`` runs with under component ``settings``."""
    if workload.option is not None:
        return _clean(setting(*workload.option)(settings))
    chosen = (settings.get("resources") or {}).get(workload.name) if workload.overridable else None
    return _clean(chosen if chosen is not None else workload.default)


def resources(settings, release_name, name):
    """The requests and limits of workload ``name`` of release ``release_name``, for a raw manifest.

    ``settings`` are the owning component's; e.g. ``resources(settings, "cloudflared", "cloudflared")``.
    """
    return workload_resources(settings, _workload(release_name, name))


def option_path(workload):
    """The inventory path, below ``plinth_components.<key>``, of ``workload``'s requests and limits."""
    return ".".join(workload.option) if workload.option is not None else "resources." + workload.name


def sized(spec, release, settings, values):
    """``values`` of ``release`` with every active workload's resources filled in where unset."""
    values = copy.deepcopy(values)  # a component may hand out a dict it keeps
    for workload in TABLE.get(release.name, []):
        if not workload.active(settings):
            continue
        for path in workload.paths:
            _fill(values, path.split("."), workload_resources(settings, workload))
    return values


def _fill(values, keys, resources):
    node = values
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            return  # the component wrote something else here (a YAML string): it is in charge
    if not node.get(keys[-1]):
        node[keys[-1]] = copy.deepcopy(resources)


# --- what lands on each pool ------------------------------------------------------

def placed(spec, components):
    """``(pool, who, pods, containers, requests)`` of every active workload of every enabled component.

    ``components`` is the registry; ``who`` reads ``<component key>/<workload>``.
    """
    found = []
    for component in components:
        settings = spec["components"].get(component.key) or {}
        if not settings.get("enabled"):
            continue
        for workload in workloads(component):
            if workload.pods is None or not workload.active(settings):
                continue
            requests = workload_resources(settings, workload).get("requests") or {}
            for pool, pods in sorted(workload.pods(spec, settings).items()):
                if pods:
                    found.append((pool, "%s/%s" % (component.key, workload.name), pods,
                                  workload.containers(), requests))
    return found

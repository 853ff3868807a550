# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Argo CD: installed by Ansible with these values, then managing itself.

* Sync waves between child Applications only wait when Argo CD can tell an
  Application's health, which it no longer does out of the box: argocd-cm
  carries a health check for ``argoproj.io/Application``.
* No repository or credential appears here.  The ``argocd`` role creates the
  GitOps repository Secret from ansible-vault; Argo CD finds it by its
  ``argocd.argoproj.io/secret-type`` label.
* ServiceMonitors are asked for when monitoring is enabled: the chart renders
  them only when the cluster serves the Prometheus Operator API, so the
  bootstrap install (no CRDs yet) simply goes without them.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

# redis-ha chart defaults kept by these values: 3 Redis servers and 3 HAProxy
# pods, each with hard anti-affinity (one per host).
REDIS_HA_PODS = 3

APPLICATION_HEALTH_LUA = """\
-- Report a child Application as healthy only once Argo CD says so; until its
-- health is known it counts as Progressing, which holds the next sync wave.
local result = {status = "Progressing", message = "health not reported yet"}
if obj.status ~= nil and obj.status.health ~= nil and obj.status.health.status ~= nil then
  result.status = obj.status.health.status
  result.message = obj.status.health.message or ""
end
return result
"""

OPTIONS = {
    "ha": s.Bool(True, doc="redis-ha and several replicas of server, repo-server and ApplicationSet controller"),
    "replicas": s.Int(2, minimum=1, doc="replicas of server, repo-server and ApplicationSet controller when ha"),
    "controller_replicas": s.Int(1, minimum=1,
                                 doc="application controller replicas; more than one shards clusters, "
                                     "which helps only with several clusters"),
    "domain": s.Str(None, nullable=True, checks=[s.dns_subdomain], doc="external host name of the UI/API"),
    "server_insecure": s.Bool(True, doc="serve plain HTTP: TLS ends at the gateway in front of Argo CD"),
    "dex": s.Bool(False, doc="run Dex for SSO connectors configured in argocd-cm"),
}


def _monitoring(spec):
    return common.enabled(spec, "monitoring")


def _metrics(spec):
    enabled = _monitoring(spec)
    return {"enabled": enabled, "serviceMonitor": {"enabled": enabled}}


def _pdb(replicas):
    if replicas < 2:
        return {"enabled": False}
    return {"enabled": True, "minAvailable": common.pdb_min_available(replicas)}


def _scaled(spec, replicas):
    return {"replicas": replicas, "pdb": _pdb(replicas), "metrics": _metrics(spec)}


def _redis_ha(spec, settings):
    if not settings["ha"]:
        return {"enabled": False}
    placed = common.placement(spec, settings["pool"])
    return {
        "enabled": True,
        "hardAntiAffinity": True,
        # The subchart places its Redis StatefulSet and HAProxy Deployment by these top-level keys.
        "nodeSelector": placed["nodeSelector"],
        "tolerations": placed["tolerations"],
        "podDisruptionBudget": {"maxUnavailable": 1},
        "haproxy": {"hardAntiAffinity": True, "podDisruptionBudget": {"maxUnavailable": 1}},
    }


def values(spec, settings):
    ha = settings["ha"]
    replicas = settings["replicas"] if ha else 1
    placed = common.placement(spec, settings["pool"])
    global_ = {"nodeSelector": placed["nodeSelector"], "tolerations": placed["tolerations"]}
    if settings["domain"]:
        global_["domain"] = settings["domain"]
    if ha:
        # The chart fills in each component's own selector when labelSelector is left out.
        global_["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        }]
    controller = _scaled(spec, settings["controller_replicas"])
    return {
        "global": global_,
        "configs": {
            "cm": {"resource.customizations.health.argoproj.io_Application": APPLICATION_HEALTH_LUA},
            "params": {
                "server.insecure": settings["server_insecure"],
                # Argo CD 3 keeps each resource's health out of the Application by default; the
                # convergence stage reads it there to name what holds a wave back.
                "controller.resource.health.persist": True,
            },
        },
        "controller": controller,
        "server": _scaled(spec, replicas),
        "repoServer": _scaled(spec, replicas),
        "applicationSet": _scaled(spec, replicas),
        "dex": {"enabled": settings["dex"]},
        "redis": {"enabled": not ha},
        "redis-ha": _redis_ha(spec, settings),
    }


def check(spec, settings, errors, path):
    pool_name = settings.get("pool")
    if not settings["ha"] or pool_name not in spec["node_pools"] \
            or not spec["node_pools"][pool_name].get("resolved", True):
        return
    if settings["replicas"] < 2:
        errors.add(path + ".replicas", settings["replicas"], "ha needs at least 2 replicas")
    common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])
    pool = spec["node_pools"][pool_name]
    if len(pool["hosts"]) < REDIS_HA_PODS:
        errors.add(path + ".ha", True,
                   "redis-ha runs %d Redis servers with hard anti-affinity (one per host) and needs %d hosts "
                   "in pool %r (group %s has %d); set ha: false or add hosts"
                   % (REDIS_HA_PODS, REDIS_HA_PODS, pool_name, pool["group"], len(pool["hosts"])))


COMPONENT = Component(
    key="argocd", title="Argo CD", namespace="argocd", project="infra", pool="worker", enabled=True,
    pod_security="restricted", options=OPTIONS, check=check,
    releases=[Release("argo-cd", 0, {"repo": "https://argoproj.github.io/argo-helm", "name": "argo-cd",
                                     "version": "10.1.1"}, values=values,
                      # The ApplicationSet CRD alone is over a megabyte: client-side apply cannot store it.
                      server_side_apply=True)],
    doc="GitOps controller; self-managed after the Ansible install.",
)

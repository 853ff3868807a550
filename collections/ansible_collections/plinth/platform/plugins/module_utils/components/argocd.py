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
* ServiceMonitors are asked for when monitoring is enabled, for every workload
  that has one (controller, server, repo-server, ApplicationSet controller,
  notifications, Dex, the Redis exporter or redis-ha's exporter and HAProxy):
  the charts render them only when the cluster serves the Prometheus Operator
  API, so the bootstrap install (no CRDs yet) simply goes without them.
* NetworkPolicies come with the raw manifests, so the bootstrap install runs
  without them and Argo CD applies them once it manages itself.  The namespace
  holds Argo CD alone, so its pods may talk to each other freely (Redis is
  thereby reachable from Argo CD's pods only); from outside, only the server's
  UI/API and the metrics ports are open.  The repo-server reaches Git and Helm
  repositories anywhere: they may sit on the hosts' network or in the cluster
  as well as on the internet.
"""

from __future__ import absolute_import, annotations, division, print_function

from urllib.parse import urlsplit

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release, registry
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RELEASE = "argo-cd"
# The chart's nameOverride: its pods are labelled app.kubernetes.io/name=argocd-<component>.
CHART_NAME = "argocd"
SERVER_PORT = 8080
# Container ports of the metrics endpoints (chart defaults): application controller, server,
# repo-server, ApplicationSet controller, notifications controller, Dex, Redis exporter and
# redis-ha's HAProxy.
METRICS_PORTS = (5558, 8080, 8082, 8083, 8084, 9001, 9101, 9121)
# Where repo-server fetches Git and Helm repositories unless a URL names another port.
REPOSITORY_PORTS = (22, 443)
# Dex's identity providers and the notification services' webhooks.
HTTPS_PORT = 443
DEFAULT_PORTS = {"https": 443, "http": 80, "oci": 443, "ssh": 22, "git": 9418}

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


def _redis(spec, settings):
    """The single Redis of a non-HA install, with its exporter sidecar while monitored."""
    if settings["ha"]:
        return {"enabled": False}
    return {"enabled": True, "exporter": {"enabled": _monitoring(spec)}, "metrics": _metrics(spec)}


def _redis_ha(spec, settings):
    if not settings["ha"]:
        return {"enabled": False}
    placed = common.placement(spec, settings["pool"])
    monitor = {"enabled": _monitoring(spec)}
    return {
        "enabled": True,
        "hardAntiAffinity": True,
        # The subchart places its Redis StatefulSet and HAProxy Deployment by these top-level keys.
        "nodeSelector": placed["nodeSelector"],
        "tolerations": placed["tolerations"],
        "podDisruptionBudget": {"maxUnavailable": 1},
        "exporter": {"enabled": _monitoring(spec), "serviceMonitor": monitor},
        # HAProxy serves its metrics whatever happens (the parent chart's default); only the monitor follows.
        "haproxy": {"hardAntiAffinity": True, "podDisruptionBudget": {"maxUnavailable": 1},
                    "metrics": {"enabled": True, "serviceMonitor": dict(monitor)}},
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
        "notifications": {"metrics": _metrics(spec)},
        "dex": {"enabled": settings["dex"], "metrics": _metrics(spec)},
        "redis": _redis(spec, settings),
        "redis-ha": _redis_ha(spec, settings),
    }


def pod_labels(component):
    """The selector labels the chart gives the pods of ``component`` (``repo-server``, ``server``...)."""
    return {"app.kubernetes.io/name": "%s-%s" % (CHART_NAME, component), "app.kubernetes.io/instance": RELEASE}


def url_port(url):
    """The TCP port ``url`` (a Git or Helm repository) is fetched on; None for a local path."""
    if not url or url.startswith(("/", ".", "file://")):
        return None
    if "://" not in url:
        return DEFAULT_PORTS["ssh"]  # scp-like user@host:path
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None  # validation names a bad URL; the scheme's port still applies
    return port or DEFAULT_PORTS.get(parts.scheme.lower())


def repository_ports(spec):
    """Ports of every repository repo-server reads: Git and Helm defaults, the GitOps repository,
    the chart mirror and each chart's repository (components and apps)."""
    found = set(REPOSITORY_PORTS)
    repos = [spec["gitops"].get("repo_url"), spec.get("chart_mirror")]
    for component in registry():
        settings = spec["components"].get(component.key) or {}
        if not settings.get("enabled"):
            continue
        repos += [(settings.get(r.chart_option) or {}).get("repo") for r in component.releases if r.chart]
    repos += [(app.get("chart") or {}).get("repo") for app in spec["apps"]]
    found.update(url_port(repo) for repo in repos)
    found.discard(None)
    return sorted(found)


def _everywhere(name, namespace, component, ports):
    """Egress from ``component``'s pods to any address on ``ports``: repositories and services
    may be on the internet, the hosts' network or in the cluster."""
    return common.network_policy(name, namespace, pod_labels(component),
                                 egress=[{"ports": common.tcp_ports(*ports)}])


def network_policies(spec, settings):
    namespace = settings["namespace"]
    everyone = [{"podSelector": {}}]
    policies = common.baseline_policies(namespace) + [
        # The controller, server, ApplicationSet and notifications controllers, Dex and the Redis
        # secret Job all read the API; Argo CD manages the cluster, so no pod of it is kept from it.
        common.allow_apiserver(spec, namespace),
        common.network_policy("allow-argocd", namespace, ingress=[{"from": everyone}], egress=[{"to": everyone}]),
        # The UI and API for every client in the cluster, the gateway in front of it among them.
        common.network_policy("allow-server", namespace, pod_labels("server"), ingress=[{
            "from": [{"namespaceSelector": {}}], "ports": common.tcp_ports(SERVER_PORT)}]),
        _everywhere("allow-repositories", namespace, "repo-server", repository_ports(spec)),
        _everywhere("allow-notification-services", namespace, "notifications-controller", [HTTPS_PORT]),
    ]
    if settings["dex"]:
        policies.append(_everywhere("allow-identity-providers", namespace, "dex-server", [HTTPS_PORT]))
    if _monitoring(spec):
        policies.append(common.allow_from("allow-metrics", namespace, None,
                                          [spec["components"]["monitoring"]["namespace"]], METRICS_PORTS))
    return policies


def manifests(spec, settings):
    return network_policies(spec, settings)


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
    releases=[Release(RELEASE, 0, {"repo": "https://argoproj.github.io/argo-helm", "name": "argo-cd",
                                   "version": "10.1.1"}, values=values, manifests=manifests,
                      # The ApplicationSet CRD alone is over a megabyte: client-side apply cannot store it.
                      server_side_apply=True)],
    doc="GitOps controller; self-managed after the Ansible install.",
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kube-prometheus-stack: Prometheus, Alertmanager and Grafana on the worker pool.

Two releases: ``prometheus-operator-crds`` goes early (wave 10) so that every
other component may ship ServiceMonitors and PodMonitors; the stack itself
then runs with its own CRD subchart disabled.

Beside the chart, the stack's release carries Plinth's alerting rules (see
alerts.py), the platform overview dashboard (dashboards.py), one ExternalSecret
per Alertmanager receiver and the namespace's NetworkPolicies.

Alertmanager receivers come from ``alertmanager.receivers``; no credential is
written anywhere: each receiver's secret (Slack webhook URL, PagerDuty routing
key, webhook URL, SMTP password) comes from Vault into a Secret that the
Alertmanager pods mount (``alertmanagerSpec.secrets``, under SECRETS_DIR), and
the receiver names that file (api_url_file, routing_key_file, url_file,
auth_password_file).

NetworkPolicies: everything is denied, then allowed per workload: Prometheus
scrapes every namespace and every host on any port (host-network targets such
as kubelets, node-exporter and the control plane listen on many), Grafana is
reachable from the cluster and reads Prometheus and Alertmanager, Alertmanager
sends to its receivers, the operator's webhook takes calls from the API server,
and whatever talks to the API server may.  node-exporter gets no policy: it
runs on the host's network, where NetworkPolicies do not apply, so its port
(9100) is exactly as reachable as the host itself.
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress

from ansible_collections.plinth.platform.plugins.module_utils import placement, schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import alerts, common, dashboards

__metaclass__ = type

CHARTS = "https://prometheus-community.github.io/helm-charts"
GRAFANA_ADMIN_SECRET = "grafana-admin"
# Share of the PVC that Prometheus may fill before it drops old blocks early:
# the WAL and compaction need head room beyond the retained blocks.
RETENTION_SIZE_SHARE = 0.85
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}

# Where the operator mounts each Secret listed in alertmanagerSpec.secrets: <dir>/<secret>/<key>.
SECRETS_DIR = "/etc/alertmanager/secrets"
RECEIVER_SECRET_PREFIX = "alertmanager-receiver-"
# Alertmanager's route to nowhere, for what no receiver takes and for the chart's alerts that
# only exist for Alertmanager itself: Watchdog always fires (a dead man's switch), InfoInhibitor
# mutes info alerts.
NULL_RECEIVER = "null"
SILENT_ALERTS = ("Watchdog", "InfoInhibitor")
# Per receiver type: the key of its Secret (and default Vault property), and the *_file
# field of Alertmanager's receiver configuration that reads it.
RECEIVER_TYPES = {
    "slack": ("api-url", "api_url_file"),
    "pagerduty": ("routing-key", "routing_key_file"),
    "webhook": ("url", "url_file"),
    "email": ("password", "auth_password_file"),
}
# Options that only one receiver type reads, and those it requires.
RECEIVER_FIELDS = {"slack": ("channel",), "email": ("to", "from", "smarthost", "auth_username")}
RECEIVER_REQUIRED = {"email": ("to", "from", "smarthost", "auth_username")}
SEVERITIES = ("critical", "warning", "info")
HTTPS_PORT = 443

# Pod labels, as the chart and the operator set them.
PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}
ALERTMANAGER_PODS = {"app.kubernetes.io/name": "alertmanager"}
GRAFANA_PODS = {"app.kubernetes.io/name": "grafana"}
OPERATOR_PODS = {"app": "kube-prometheus-stack-operator"}
KUBE_STATE_METRICS_PODS = {"app.kubernetes.io/name": "kube-state-metrics"}
# The chart's hook Jobs that create the webhook's certificate and patch it into the webhook configurations.
ADMISSION_JOBS = {"create": {"app": "kube-prometheus-stack-admission-create"},
                  "patch": {"app": "kube-prometheus-stack-admission-patch"}}
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
ALERTMANAGER_MESH_PORT = 9094
GRAFANA_PORT = 3000
# The operator serves its admission webhook on the chart's tls.internalPort.
OPERATOR_WEBHOOK_PORT = 10250

# node-exporter's default filesystem filters in the chart; extraArgs replaces the list, so they are repeated.
NODE_EXPORTER_ARGS = [
    "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|run/containerd/.+|var/lib/docker/.+"
    "|var/lib/kubelet/.+)($|/)",
    "--collector.filesystem.fs-types-exclude=^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs"
    "|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs"
    "|sysfs|tracefs|erofs)$",
    "--collector.textfile.directory=" + alerts.TEXTFILE_DIRECTORY,
]


def _smarthost(value):
    host, _colon, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be host:port of the SMTP server, like smtp.example.com:587"
    return None


RECEIVER = s.Dict({
    "name": s.Str(checks=[s.dns_label], doc="Receiver name; also names its Secret alertmanager-receiver-<name>."),
    "type": s.Str(choices=tuple(sorted(RECEIVER_TYPES)), doc="slack, pagerduty, webhook or email."),
    "vault_path": s.Str(doc="Vault KV path of the receiver's secret: the Slack webhook URL, the PagerDuty "
                            "routing key (Events API v2), the webhook URL or the SMTP password."),
    "vault_property": s.Str(None, nullable=True,
                            doc="Property at vault_path holding it; default api-url (slack), routing-key "
                                "(pagerduty), url (webhook) or password (email)."),
    "severities": s.List(s.Str(choices=SEVERITIES), default=[],
                         doc="Severities this receiver gets; empty: every alert."),
    "channel": s.Str(None, nullable=True, doc="slack: channel to post to (default: the webhook's own)."),
    "to": s.Str(None, nullable=True, doc="email (required): recipient address(es)."),
    "from": s.Str(None, nullable=True, doc="email (required): sender address."),
    "smarthost": s.Str(None, nullable=True, checks=[_smarthost],
                       doc="email (required): SMTP server as host:port; Alertmanager may reach that port."),
    "auth_username": s.Str(None, nullable=True, doc="email (required): SMTP user name."),
})

OPTIONS = {
    "retention": s.Str("30d", checks=[s.duration], doc="How long Prometheus keeps samples."),
    "prometheus_replicas": s.Int(2, minimum=1, doc="Prometheus pods, one per worker host."),
    "alertmanager_replicas": s.Int(2, minimum=1, doc="Alertmanager pods, one per worker host."),
    "prometheus_storage": s.Str("50Gi", checks=[s.quantity], doc="PVC size of each Prometheus pod."),
    "alertmanager_storage": s.Str("10Gi", checks=[s.quantity], doc="PVC size of each Alertmanager pod."),
    "storage_class": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                           doc="StorageClass of every monitoring PVC; default: rook_ceph.storage_class "
                               "when Rook-Ceph is enabled, else the cluster default."),
    "control_plane_metrics": s.Bool(True, doc="Scrape kube-controller-manager, kube-scheduler, etcd and "
                                              "kube-proxy; kubeadm then binds their metrics to every host "
                                              "address unless the control_plane role's bind options say "
                                              "otherwise."),
    "alerts": alerts.OPTIONS,
    "alertmanager": s.Dict({
        "receivers": s.List(RECEIVER, default=[],
                            doc="Where alerts go; none: Alertmanager keeps them to itself (its UI and API). "
                                "Webhook URLs must be https on port 443: the NetworkPolicy opens no other."),
        "group_by": s.List(s.Str(), default=["namespace", "alertname"],
                           doc="Labels that group alerts into one notification."),
        "repeat_interval": s.Str("4h", checks=[s.duration], doc="How often a still-firing alert is sent again."),
    }, doc="Alertmanager's receivers and route; every credential comes from Vault."),
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


def _node_exporter(spec):
    """On every node, with the textfile collector reading what host jobs (the etcd backup) publish."""
    return {
        "tolerations": node_exporter_tolerations(spec),
        "extraArgs": list(NODE_EXPORTER_ARGS),
        "extraHostVolumeMounts": [{
            "name": "textfile", "hostPath": alerts.TEXTFILE_DIRECTORY, "mountPath": alerts.TEXTFILE_DIRECTORY,
            # Created empty on nodes where no job writes there yet, so the pod still starts.
            "type": "DirectoryOrCreate", "readOnly": True,
        }],
    }


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
    values = {
        "alertmanagerSpec": am_spec,
        "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": common.pdb_min_available(replicas)},
    }
    receivers = settings["alertmanager"]["receivers"]
    if receivers:
        am_spec["secrets"] = [receiver_secret(r) for r in receivers]
        # Merged over the chart's configuration, which keeps its inhibit rules and templates.
        values["config"] = alertmanager_config(settings["alertmanager"])
    return values


def receiver_secret(receiver):
    return RECEIVER_SECRET_PREFIX + receiver["name"]


def receiver_key(receiver):
    return RECEIVER_TYPES[receiver["type"]][0]


def _receiver(receiver):
    """One receiver of Alertmanager's configuration, its credential read from the mounted Secret."""
    kind = receiver["type"]
    field = RECEIVER_TYPES[kind][1]
    config = {field: "%s/%s/%s" % (SECRETS_DIR, receiver_secret(receiver), receiver_key(receiver)),
              "send_resolved": True}
    for option in RECEIVER_FIELDS.get(kind, ()):
        if receiver[option]:
            config[option] = receiver[option]
    if kind == "email":
        config["require_tls"] = True
    return {"name": receiver["name"], "%s_configs" % kind: [config]}


def _route(receiver):
    route = {"receiver": receiver["name"], "continue": True}
    if receiver["severities"]:
        route["matchers"] = ['severity =~ "%s"' % "|".join(receiver["severities"])]
    return route


def alertmanager_config(settings):
    """Route and receivers: SILENT_ALERTS to nowhere, then every alert to each receiver that takes its severity."""
    receivers = settings["receivers"]
    return {
        "route": {
            "receiver": NULL_RECEIVER,
            "group_by": list(settings["group_by"]),
            "repeat_interval": settings["repeat_interval"],
            "routes": ([{"receiver": NULL_RECEIVER, "matchers": ['alertname =~ "%s"' % "|".join(SILENT_ALERTS)]}]
                       + [_route(r) for r in receivers]),
        },
        "receivers": [{"name": NULL_RECEIVER}] + [_receiver(r) for r in receivers],
    }


def receiver_external_secrets(spec, settings):
    """One ExternalSecret per receiver: its credential from Vault, under the key its *_file names."""
    found = []
    for receiver in settings["alertmanager"]["receivers"]:
        prop = receiver["vault_property"] or receiver_key(receiver)
        found.append(common.external_secret(spec, receiver_secret(receiver), settings["namespace"],
                                            {receiver_key(receiver): (receiver["vault_path"], prop)}))
    return found


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
        # The chart's rules for Kubernetes itself; Plinth's own come as raw manifests.
        "defaultRules": {"create": True},
        "prometheus": _prometheus(spec, settings),
        "alertmanager": _alertmanager(spec, settings),
        "grafana": _grafana(spec, settings),
        "prometheusOperator": dict(_scheduling(spec, settings), admissionWebhooks={
            "patch": _scheduling(spec, settings),
        }),
        "kube-state-metrics": _scheduling(spec, settings),
        "prometheus-node-exporter": _node_exporter(spec),
    }
    values.update(_control_plane(spec, settings))
    return values


def stack_manifests(spec, settings):
    docs = _grafana_admin(spec, settings) + receiver_external_secrets(spec, settings)
    docs += [doc for doc in (alerts.prometheus_rule(spec, settings), dashboards.config_map(spec, settings)) if doc]
    return docs + network_policies(spec, settings)


def _grafana_admin(spec, settings):
    grafana = settings["grafana"]
    if not grafana["enabled"]:
        return []
    return [common.external_secret(
        spec, GRAFANA_ADMIN_SECRET, settings["namespace"],
        {"admin-password": (grafana["vault_path"], "admin-password")},
        # The user name is not secret: the template adds it next to the password from Vault.
        template={"engineVersion": "v2", "mergePolicy": "Merge", "data": {"admin-user": grafana["admin_user"]}},
    )]


def _address_blocks(addresses):
    """ipBlocks for the addresses that are IPs; DNS names cannot be matched by a policy."""
    blocks = []
    for address in sorted(set(addresses)):
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        blocks.append({"ipBlock": {"cidr": "%s/%d" % (ip, ip.max_prefixlen)}})
    return blocks


def _host_blocks(spec):
    addresses = [spec["hosts"][h]["address"] for h in spec["hosts"]] + [spec["control_plane_endpoint"]["host"]]
    return _address_blocks(addresses)


def _apiserver(spec, namespace, name, pod_labels):
    policy = common.allow_apiserver(spec, namespace, pod_labels)
    policy["metadata"]["name"] = "allow-apiserver-" + name
    return policy


def _prometheus_policies(spec, namespace):
    # Every namespace on any port: each component picks its own metrics port; the hosts likewise
    # (kubelet, node-exporter, control plane, host-network agents).
    egress = [{"to": [{"namespaceSelector": {}}]}]
    hosts = _host_blocks(spec)
    if hosts:
        egress.append({"to": hosts})
    return [
        common.network_policy("allow-prometheus-egress", namespace, PROMETHEUS_PODS, egress=egress),
        # Prometheus scrapes every workload of this namespace too.
        common.network_policy("allow-scrape", namespace, ingress=[
            {"from": [common.namespace_peer(namespace, PROMETHEUS_PODS)]}]),
        common.network_policy("allow-prometheus-api", namespace, PROMETHEUS_PODS, ingress=[
            {"from": [common.namespace_peer(namespace)], "ports": common.tcp_ports(PROMETHEUS_PORT)}]),
        _apiserver(spec, namespace, "prometheus", PROMETHEUS_PODS),
    ]


def _receiver_ports(settings):
    ports = {HTTPS_PORT}
    for receiver in settings["alertmanager"]["receivers"]:
        if receiver["type"] == "email" and receiver["smarthost"]:
            ports.add(int(receiver["smarthost"].rpartition(":")[2]))
    return sorted(ports)


def _alertmanager_policies(spec, settings, namespace):
    def peers():
        return [common.namespace_peer(namespace, ALERTMANAGER_PODS)]

    def mesh():
        return [{"protocol": proto, "port": ALERTMANAGER_MESH_PORT} for proto in ("TCP", "UDP")]

    policies = [
        common.network_policy("allow-alertmanager", namespace, ALERTMANAGER_PODS, ingress=[
            {"from": [common.namespace_peer(namespace)], "ports": common.tcp_ports(ALERTMANAGER_PORT)},
            {"from": peers(), "ports": mesh()},
        ], egress=[{"to": peers(), "ports": mesh()}]),
    ]
    if settings["alertmanager"]["receivers"]:
        # Receivers are outside the cluster, at addresses only their URLs (secret) name.
        policies.append(common.allow_to("allow-alertmanager-receivers", namespace, ALERTMANAGER_PODS,
                                        ["0.0.0.0/0", "::/0"], _receiver_ports(settings)))
    return policies


def _grafana_policies(spec, settings, namespace):
    if not settings["grafana"]["enabled"]:
        return []
    return [
        common.network_policy("allow-grafana", namespace, GRAFANA_PODS, ingress=[
            {"from": [{"namespaceSelector": {}}], "ports": common.tcp_ports(GRAFANA_PORT)},
        ], egress=[
            {"to": [common.namespace_peer(namespace, PROMETHEUS_PODS)], "ports": common.tcp_ports(PROMETHEUS_PORT)},
            {"to": [common.namespace_peer(namespace, ALERTMANAGER_PODS)],
             "ports": common.tcp_ports(ALERTMANAGER_PORT)},
        ]),
        # The dashboard sidecar watches ConfigMaps in every namespace.
        _apiserver(spec, namespace, "grafana", GRAFANA_PODS),
    ]


def _operator_policies(spec, namespace):
    # The API server calls the webhook from the control-plane hosts' network: their addresses
    # when all are IPs, else any source on that one port.
    addresses = control_plane_addresses(spec)
    rule = {"ports": common.tcp_ports(OPERATOR_WEBHOOK_PORT)}
    if addresses:
        rule["from"] = _address_blocks(addresses + [spec["control_plane_endpoint"]["host"]])
    policies = [
        common.network_policy("allow-operator-webhook", namespace, OPERATOR_PODS, ingress=[rule]),
        _apiserver(spec, namespace, "operator", OPERATOR_PODS),
        _apiserver(spec, namespace, "kube-state-metrics", KUBE_STATE_METRICS_PODS),
    ]
    for name, labels in sorted(ADMISSION_JOBS.items()):
        policies.append(_apiserver(spec, namespace, "admission-" + name, labels))
    return policies


def network_policies(spec, settings):
    """Every list is built afresh: shared objects would come out as YAML anchors."""
    namespace = settings["namespace"]
    return (common.baseline_policies(namespace) + _prometheus_policies(spec, namespace)
            + _alertmanager_policies(spec, settings, namespace) + _grafana_policies(spec, settings, namespace)
            + _operator_policies(spec, namespace))


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
    _check_receivers(settings["alertmanager"]["receivers"], bool(eso.get("enabled")), errors,
                     path + ".alertmanager.receivers")


def _check_receivers(receivers, secrets, errors, path):
    seen = set()
    for index, receiver in enumerate(receivers):
        where = "%s[%d]" % (path, index)
        name, kind = receiver["name"], receiver["type"]
        if name == NULL_RECEIVER or name in seen:
            errors.add(where + ".name", name, "must be unique and not %r (the route's own receiver for "
                                              "alerts nobody takes)" % NULL_RECEIVER)
        seen.add(name)
        if kind not in RECEIVER_TYPES:
            continue  # reported by the schema
        for field in RECEIVER_REQUIRED.get(kind, ()):
            if not receiver[field]:
                errors.add(where + "." + field, receiver[field], "required for an %s receiver" % kind)
        for field in sorted(set(f for fields in RECEIVER_FIELDS.values() for f in fields)):
            if receiver[field] and field not in RECEIVER_FIELDS.get(kind, ()):
                errors.add(where + "." + field, receiver[field], "only applies to %s receivers, not %s" % (
                    " or ".join(t for t in sorted(RECEIVER_FIELDS) if field in RECEIVER_FIELDS[t]), kind))
    if receivers and not secrets:
        errors.add(path, "%d receivers" % len(receivers),
                   "each receiver's credential comes from Vault through an ExternalSecret: "
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

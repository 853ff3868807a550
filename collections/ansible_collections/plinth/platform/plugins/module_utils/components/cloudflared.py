# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Cloudflare Tunnel: cloudflared as raw manifests (no chart).

``mode: remote`` (the default): the tunnel is remotely managed: its public
host names and the origin they route to (the Kong proxy Service) are set on
the tunnel in Cloudflare, and the pods only carry the tunnel token.

``mode: local``: the routing lives in the inventory, and so in git.  The
``ingress`` rules (host name, optional path, origin defaulting to Kong's
proxy Service) and a final catch-all answering 404 become the ConfigMap
``config.yaml`` the pods run with; a checksum of it on the pod template rolls
the pods when it changes.  The pods carry the tunnel's credentials file
instead of a token.

Either secret (token or credentials) lives in Vault and reaches the pods
through an ExternalSecret; nothing secret is written here.
"""

from __future__ import absolute_import, annotations, division, print_function

import hashlib
import ipaddress
import re

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core on the controller, where this runs
    yaml = None

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common
from ansible_collections.plinth.platform.plugins.module_utils.components import kong

__metaclass__ = type

NAME = "cloudflared"
SELECTOR = {"app.kubernetes.io/name": NAME}
TOKEN_SECRET = "cloudflared-token"
TOKEN_PROPERTY = "token"
METRICS_PORT = 2000
# Cloudflare's edge: QUIC (UDP) or HTTP/2 (TCP) on 7844, its API on 443.
EDGE_PORTS = [("TCP", 7844), ("UDP", 7844), ("TCP", 443)]
# Kong chart's proxy container ports (HTTP and TLS): policies match pod ports.
GATEWAY_PORTS = [8000, 8443]
# Never "the internet": private, shared and link-local ranges stay closed.
NOT_INTERNET = {
    4: ["10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"],
    6: ["fc00::/7", "fe80::/10"],
}
VAULT_PATH = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
# Local mode: the credentials file cloudflared writes on `tunnel create`, rebuilt from Vault properties.
CREDENTIALS_SECRET = "cloudflared-credentials"
CREDENTIALS_FILE = "credentials.json"
CREDENTIALS_PROPERTIES = ("AccountTag", "TunnelID", "TunnelSecret")
CREDENTIALS_DIR = "/etc/cloudflared-credentials"
CONFIG_MAP = "cloudflared-config"
CONFIG_DIR = "/etc/cloudflared"
CONFIG_FILE = "config.yaml"
CHECKSUM_ANNOTATION = "plinth.io/config-checksum"
CATCH_ALL = "http_status:404"
# Kong chart's default proxy Service port for plain HTTP.
KONG_HTTP_PORT = 80
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TUNNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ORIGIN = re.compile(r"^(https?|wss?|tcp|ssh|rdp|smb)://"
                    r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:(?P<port>[0-9]+))?$")
HTTP_STATUS = re.compile(r"^http_status:[1-5][0-9][0-9]$")


def vault_path(value):
    if not VAULT_PATH.match(value):
        return "must be a Vault KV path like platform/cloudflared (no leading or trailing '/')"
    return None


def tunnel_ref(value):
    if not (UUID.match(value) or TUNNEL_NAME.match(value)):
        return "must be the tunnel's UUID (lower-case) or its name"
    return None


def origin(value):
    """An origin cloudflared's ingress rules accept: scheme://host[:port] or http_status:<code>."""
    if HTTP_STATUS.match(value):
        return None
    match = ORIGIN.match(value)
    if not match or (match.group("port") and not 0 < int(match.group("port")) < 65536):
        return ("must be an origin like http://web.shop.svc:8080 (schemes http, https, ws, wss, tcp, ssh, rdp, "
                "smb; no path) or http_status:404")
    return None


def ingress_hostname(value):
    """A host name, or a wildcard as cloudflared matches it: '*.' before a host name, nowhere else."""
    return s.dns_subdomain(value[2:] if value.startswith("*.") else value) and (
        "must be a host name like shop.example.com, or '*.' followed by one (cloudflared's only wildcard)")


INGRESS_RULE = s.Dict({
    "hostname": s.Str(checks=[ingress_hostname]),
    "path": s.Str(None, nullable=True, doc="Regular expression the request path must match."),
    "service": s.Str(None, nullable=True, checks=[origin],
                     doc="Origin; null: Kong's proxy Service over HTTP."),
})


OPTIONS = {
    "replicas": s.Int(2, minimum=1),
    "image": s.Dict({
        "repository": s.Str("cloudflare/cloudflared"),
        "tag": s.Str("2026.8.2"),
    }),
    "token_vault_path": s.Str("platform/cloudflared", checks=[vault_path],
                              doc="Vault KV path whose property 'token' holds the tunnel token"),
    "resources": s.Resources("50m", "64Mi", "500m", "256Mi"),
    "mode": s.Str("remote", choices=["remote", "local"],
                  doc="remote: routes set on the tunnel in Cloudflare, pods carry its token; local: routes "
                      "from 'ingress' in a ConfigMap, pods carry the tunnel's credentials file"),
    "tunnel": s.Str(None, nullable=True, checks=[tunnel_ref],
                    doc="Local mode: the tunnel's UUID or name"),
    "credentials_vault_path": s.Str("platform/cloudflared-credentials", checks=[vault_path],
                                    doc="Local mode: Vault KV path whose properties AccountTag, TunnelID and "
                                        "TunnelSecret make up the tunnel's credentials file"),
    "ingress": s.List(INGRESS_RULE, default=[],
                      doc="Local mode: the routing rules, in order; a catch-all answering 404 follows them"),
    "refresh": s.Str(None, nullable=True, checks=[common.go_duration],
                     doc="How often the token or credentials are re-read from Vault; null: "
                         "external_secrets.refresh_interval"),
}


def _local(settings):
    return settings["mode"] == "local"


def kong_origin(spec):
    """Kong's proxy Service over plain HTTP: TLS ends at Cloudflare's edge and the tunnel encrypts the rest."""
    return "http://%s:%d" % (kong.proxy_service(spec), KONG_HTTP_PORT)


def tunnel_config(spec, settings):
    """The text of config.yaml: the tunnel, its credentials file and the ingress rules, catch-all last."""
    rules = []
    for rule in settings["ingress"]:
        item = {"hostname": rule["hostname"]}
        if rule["path"]:
            item["path"] = rule["path"]
        item["service"] = rule["service"] or kong_origin(spec)
        rules.append(item)
    rules.append({"service": CATCH_ALL})
    config = {
        "tunnel": settings["tunnel"],
        "credentials-file": "%s/%s" % (CREDENTIALS_DIR, CREDENTIALS_FILE),
        "ingress": rules,
    }
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def _config_map(spec, settings):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(CONFIG_MAP, settings["namespace"], labels=SELECTOR),
        "data": {CONFIG_FILE: tunnel_config(spec, settings)},
    }


def _credentials(spec, settings):
    path = settings["credentials_vault_path"]
    body = ",".join('"%s":"{{ .%s }}"' % (prop, prop) for prop in CREDENTIALS_PROPERTIES)
    template = {"engineVersion": "v2", "data": {CREDENTIALS_FILE: "{%s}" % body}}
    return common.external_secret(spec, CREDENTIALS_SECRET, settings["namespace"],
                                  dict((prop, (path, prop)) for prop in CREDENTIALS_PROPERTIES),
                                  template=template, refresh=settings["refresh"])


def _probe(period, failures):
    return {
        "httpGet": {"path": "/ready", "port": "metrics"},
        "initialDelaySeconds": 10,
        "periodSeconds": period,
        "failureThreshold": failures,
    }


def _container(settings):
    image = settings["image"]
    return {
        "name": NAME,
        "image": "%s:%s" % (image["repository"], image["tag"]),
        "imagePullPolicy": "IfNotPresent",
        "command": ["cloudflared", "tunnel", "--no-autoupdate",
                    "--metrics", "0.0.0.0:%d" % METRICS_PORT, "run"],
        "env": [{"name": "TUNNEL_TOKEN",
                 "valueFrom": {"secretKeyRef": {"name": TOKEN_SECRET, "key": TOKEN_PROPERTY}}}],
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        # /ready answers 200 only while the tunnel holds a connection to the edge.
        "livenessProbe": _probe(10, 3),
        "readinessProbe": _probe(5, 2),
        "resources": settings["resources"],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _local_container(container):
    """``container`` running the locally managed tunnel: config and credentials files, no token."""
    command = container["command"]
    container["command"] = command[:-1] + ["--config", "%s/%s" % (CONFIG_DIR, CONFIG_FILE), command[-1]]
    del container["env"]
    container["volumeMounts"] = container["volumeMounts"] + [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "credentials", "mountPath": CREDENTIALS_DIR, "readOnly": True},
    ]
    return container


def _local_pod(spec, settings, template):
    """The pod ``template`` of the locally managed tunnel."""
    pod_spec = template["spec"]
    pod_spec["containers"] = [_local_container(c) for c in pod_spec["containers"]]
    # The credentials file is readable by the group only; the pod's user joins it.
    pod_spec["securityContext"]["fsGroup"] = pod_spec["securityContext"]["runAsGroup"]
    pod_spec["volumes"] = pod_spec["volumes"] + [
        {"name": "config", "configMap": {"name": CONFIG_MAP}},
        {"name": "credentials", "secret": {"secretName": CREDENTIALS_SECRET, "defaultMode": 0o440}},
    ]
    checksum = hashlib.sha256(tunnel_config(spec, settings).encode("utf-8")).hexdigest()
    template["metadata"]["annotations"] = {CHECKSUM_ANNOTATION: checksum}
    return template


def _deployment(spec, settings):
    namespace = settings["namespace"]
    placed = common.placement(spec, settings["pool"])
    pod_spec = {
        "serviceAccountName": NAME,
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            # The image's distroless "nonroot" user.
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "nodeSelector": placed["nodeSelector"],
        "tolerations": placed["tolerations"],
        "topologySpreadConstraints": [common.spread(SELECTOR)],
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"labelSelector": {"matchLabels": dict(SELECTOR)},
                                "topologyKey": "kubernetes.io/hostname"},
        }]}},
        # cloudflared drains its connections for up to 30 s on SIGTERM.
        "terminationGracePeriodSeconds": 45,
        "containers": [_container(settings)],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}],
    }
    template = {"metadata": {"labels": dict(SELECTOR)}, "spec": pod_spec}
    if _local(settings):
        template = _local_pod(spec, settings, template)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": common.metadata(NAME, namespace, labels=SELECTOR),
        "spec": {
            "replicas": settings["replicas"],
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": dict(SELECTOR)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": template,
        },
    }


def _service_account(settings):
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.metadata(NAME, settings["namespace"], labels=SELECTOR),
        "automountServiceAccountToken": False,
    }


def internet_blocks(spec):
    """ipBlocks for the public IPv4 and IPv6 internet, cluster networks excluded."""
    blocks = []
    for version, everything in ((4, "0.0.0.0/0"), (6, "::/0")):
        closed = [ipaddress.ip_network(c) for c in NOT_INTERNET[version]]
        for key in ("pod_cidr", "service_cidr"):
            try:
                net = ipaddress.ip_network(spec[key])
            except (TypeError, ValueError):
                continue
            if net.version == version:
                closed.append(net)
        collapsed = sorted(ipaddress.collapse_addresses(closed))
        blocks.append({"ipBlock": {"cidr": everything, "except": [str(n) for n in collapsed]}})
    return blocks


def _allow_edge(spec, namespace):
    return common.network_policy("allow-cloudflare-edge", namespace, SELECTOR, egress=[{
        "to": internet_blocks(spec),
        "ports": [{"protocol": proto, "port": port} for proto, port in EDGE_PORTS],
    }])


def _network_policies(spec, settings):
    namespace = settings["namespace"]
    policies = common.baseline_policies(namespace) + [_allow_edge(spec, namespace)]
    kong = spec["components"].get("kong") or {}
    if kong.get("enabled"):
        policies.append(common.allow_to("allow-gateway", namespace, SELECTOR, [kong["namespace"]], GATEWAY_PORTS))
    origins = _origin_namespaces(settings) - set([kong.get("namespace")] if kong.get("enabled") else [])
    if _local(settings) and origins:
        # Pod ports behind those Services are not known here: any port of those namespaces.
        policies.append(common.allow_to("allow-origins", namespace, SELECTOR, sorted(origins), []))
    monitoring = spec["components"].get("monitoring") or {}
    if monitoring.get("enabled"):
        policies.append(common.allow_from("allow-metrics", namespace, SELECTOR,
                                          [monitoring["namespace"]], [METRICS_PORT]))
    return policies


def _pod_monitor(settings):
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": common.metadata(NAME, settings["namespace"], labels=SELECTOR),
        "spec": {
            "selector": {"matchLabels": dict(SELECTOR)},
            "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}],
        },
    }


def _origin_namespaces(settings):
    """Namespaces of the in-cluster Services (<service>.<namespace>.svc[.…]) that ingress rules name."""
    found = set()
    for rule in settings["ingress"] or []:
        match = ORIGIN.match((rule or {}).get("service") or "")
        labels = match.group("host").split(".") if match else []
        if len(labels) >= 3 and labels[2] == "svc":
            found.add(labels[1])
    return found


def manifests(spec, settings):
    namespace = settings["namespace"]
    if _local(settings):
        secret = _credentials(spec, settings)
    else:
        secret = common.external_secret(
            spec, TOKEN_SECRET, namespace, {TOKEN_PROPERTY: (settings["token_vault_path"], TOKEN_PROPERTY)},
            refresh=settings["refresh"])
    # The Secret must exist before the pods that read it start.
    secret["metadata"]["annotations"] = {"argocd.argoproj.io/sync-wave": "-1"}
    docs = [_service_account(settings), secret]
    if _local(settings):
        docs.append(_config_map(spec, settings))
    docs.append(_deployment(spec, settings))
    if settings["replicas"] > 1:
        docs.append(common.pod_disruption_budget(NAME, namespace, SELECTOR, settings["replicas"], labels=SELECTOR))
    docs += _network_policies(spec, settings)
    if common.enabled(spec, "monitoring"):
        docs.append(_pod_monitor(settings))
    return docs


def check(spec, settings, errors, path):
    common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])
    tag = settings["image"]["tag"]
    if tag == "latest" or not tag:
        errors.add(path + ".image.tag", tag, "pin a concrete cloudflared version (e.g. 2026.8.2), not 'latest'")
    if not common.enabled(spec, "external_secrets"):
        errors.add(path + ".enabled", True, "needs plinth_components.external_secrets.enabled: true "
                                            "(the tunnel token comes from Vault through an ExternalSecret)")
    if _local(settings):
        _check_local(spec, settings, errors, path)
    else:
        for key in ("tunnel", "ingress"):
            if settings[key]:
                errors.add(path + "." + key, settings[key], "is used only with mode: local (a remotely managed "
                                                            "tunnel takes its routes from Cloudflare)")


def _check_local(spec, settings, errors, path):
    if not settings["tunnel"]:
        errors.add(path + ".tunnel", settings["tunnel"], "mode: local needs the tunnel's UUID or name")
    if not settings["ingress"]:
        errors.add(path + ".ingress", [], "mode: local needs at least one rule (anything else answers 404)")
    seen = {}
    for index, rule in enumerate(settings["ingress"]):
        where = "%s.ingress[%d]" % (path, index)
        if not rule or not isinstance(rule.get("hostname"), str):
            continue  # reported by the schema
        _check_path(rule, where, errors)
        key = (rule["hostname"].lower(), rule["path"] or None)
        if key in seen:
            errors.add(where + ".hostname", rule["hostname"], "the same host name and path as ingress[%d]: "
                       "cloudflared uses the first matching rule, so this one would never match" % seen[key])
        seen.setdefault(key, index)
        if not rule["service"] and not common.enabled(spec, "kong"):
            errors.add(where + ".service", None, "defaults to Kong's proxy Service, but "
                       "plinth_components.kong.enabled is false: name an origin")


def _check_path(rule, where, errors):
    if rule["path"] is None:
        return
    try:
        re.compile(rule["path"])
    except re.error as exc:
        errors.add(where + ".path", rule["path"], "must be a regular expression (%s)" % exc)


COMPONENT = Component(
    key="cloudflared", title="Cloudflare Tunnel", namespace="cloudflared", project="platform", pool="worker",
    enabled=True, pod_security="restricted", options=OPTIONS, check=check,
    releases=[Release("cloudflared", 70, None, manifests=manifests)],
    doc="Cloudflare Tunnel to the Kong gateway, remotely managed (token from Vault) or locally managed "
        "(ingress rules from the inventory, credentials from Vault).",
)

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
"""

from __future__ import absolute_import, annotations, division, print_function

import json

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


def values(spec, settings):
    return {
        "global": {
            "name": NAME,
            "datacenter": spec["cluster_name"],
            "tls": {"enabled": False},
            "gossipEncryption": _gossip(settings),
            "acls": _acls(spec, settings),
            # Makes the acl-init Job an Argo CD Sync hook, re-created on each sync.
            "argocd": {"enabled": True},
        },
        "server": _server(spec, settings),
        "client": {"enabled": False},
        "connectInject": {"enabled": False},
        "dns": {"enabled": False},
        "syncCatalog": {"enabled": False},
        "meshGateway": {"enabled": False},
        "ui": {"enabled": settings["ui"], "service": {"enabled": settings["ui"], "type": "ClusterIP"}},
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
    return policies


def manifests(spec, settings):
    docs = network_policies(spec, settings)
    if settings["gossip_encryption"] == "vault":
        secret = common.external_secret(spec, GOSSIP_SECRET, settings["namespace"],
                                        {GOSSIP_SECRET_KEY: (settings["gossip_key_vault_path"], "key")})
        # The ExternalSecret CRD arrives with the external-secrets app, in a later wave.
        secret["metadata"]["annotations"] = {
            "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true"}
        docs.append(secret)
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

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Vault: HA servers whose storage (and HA lock) is the in-cluster Consul.

The chart's HA example points ``storage "consul"`` at ``HOST_IP:8500``, a
client agent on every node; consul-k8s no longer runs client agents, so the
address here is the Consul server Service by its DNS name.  Raft is off:
Consul is the only backend offered.

Choices made here:
- Injector off by default: workloads get secrets through External Secrets,
  which reads Vault with one Kubernetes-auth role per namespace (see the
  external_secrets component).
- TLS off by default: there is no in-cluster CA to issue Vault a certificate
  and the certificate cannot come from Vault itself.  ``tls_secret_name``
  names a kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) that the
  operator creates in Vault's namespace; its certificate must cover
  ``vault.<namespace>.svc`` (External Secrets) and 127.0.0.1 (the chart's
  probes and CLI).  A namespaced SecretStore reads its CA from its own
  namespace only, so the tree puts ``tls_ca_certificate`` (public) in a
  ConfigMap ``vault-ca`` beside each SecretStore.
  Without TLS, Vault traffic stays on the pod network, fenced by
  NetworkPolicies (Cilium's transparent encryption, when on, covers the wire).
- ``disable_mlock``: the restricted Pod Security level forbids IPC_LOCK, and
  swap is off on every node, so there is nothing for mlock to protect against.
- Vault starts sealed and a sealed pod is not Ready, so the Application stays
  Progressing (and later sync waves wait) until the vault stage (role
  ``vault``) initialises and unseals it, or, with ``seal``, the servers
  unseal themselves through transit or AWS KMS.  What External Secrets needs inside Vault (the KV v2 engine,
  the Kubernetes auth method, and per namespace a role bound to its reader
  ServiceAccount with a policy admitting only the paths its ExternalSecrets
  read) is not in the tree: ``secret_access.secret_access`` (the
  ``plinth.platform.vault_access`` filter) describes it from the same
  ExternalSecrets, for the Ansible stage that configures Vault.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common
from ansible_collections.plinth.platform.plugins.module_utils.components import consul

__metaclass__ = type

RELEASE = "vault"
API_PORT = 8200
CLUSTER_PORT = 8201
INJECTOR_PORT = 8080
INJECTOR_REPLICAS = 2
CONSUL_PATH = "vault/"
RUN_AS_USER = 100
RUN_AS_GROUP = 1000
TLS_DIR = "/vault/userconfig/tls"
MAX_SHARES = 255
SEAL_TYPES = ("shamir", "transit", "awskms")
# What each auto-unseal seal must be told, and the port it reaches its key service on.
SEAL_REQUIRED = {"transit": ("address", "key_name", "credentials_secret_name"), "awskms": ("region", "kms_key_id")}
SEAL_FIELDS = {"transit": ("address", "key_name", "mount_path", "credentials_secret_name"),
               "awskms": ("region", "kms_key_id", "credentials_secret_name")}
HTTPS_PORT = 443
# With TLS, each namespace that reads secrets holds Vault's CA certificate here (SecretStores
# may not read another namespace's objects).
CA_CONFIG_MAP = "vault-ca"
CA_KEY = "ca.crt"


def _pem_certificate(value):
    text = value.strip()
    if not (text.startswith("-----BEGIN CERTIFICATE-----") and text.endswith("-----END CERTIFICATE-----")):
        return "must be one PEM certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)"
    return None


def ca_config_map(spec, namespace, annotations):
    """Vault's CA certificate where ``namespace``'s SecretStore can read it (None without TLS)."""
    settings = spec["components"]["vault"]
    if not settings["tls_secret_name"]:
        return None
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": common.metadata(CA_CONFIG_MAP, namespace, annotations=annotations),
            "data": {CA_KEY: settings["tls_ca_certificate"].strip() + "\n"}}


def _backend_supported(value):
    if value != "consul":
        return "only 'consul' is supported: Vault stores its data in the in-cluster Consul (raft is not offered)"
    return None


OPTIONS = {
    "replicas": s.Int(3, minimum=1, doc="Vault servers (one active, the rest standby), one per host of the pool."),
    "backend": s.Str("consul", checks=[_backend_supported], doc="Storage backend; only consul."),
    "ui": s.Bool(True, doc="Serve the web UI on the API port and add the ClusterIP Service vault-ui."),
    "injector": s.Bool(False, doc="Deploy the Vault Agent injector (webhook); External Secrets is the "
                                  "platform's secrets path, so it is off by default."),
    "tls_secret_name": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                             doc="kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) in Vault's namespace; "
                                 "set it to serve the API over TLS. Created by the operator, not by Vault; "
                                 "needs tls_ca_certificate."),
    "tls_ca_certificate": s.Str(None, nullable=True, checks=[_pem_certificate],
                                doc="PEM certificate of the CA that signed Vault's (public, not a secret): "
                                    "the tree puts it in the ConfigMap vault-ca (key ca.crt) of each namespace "
                                    "that reads secrets, where its SecretStore verifies Vault."),
    "consul_token_secret_name": s.Str("vault-consul-token", checks=[s.dns_subdomain],
                                      doc="Secret in Vault's namespace whose key 'token' is Vault's Consul "
                                          "ACL token; read only when consul.acls is true."),
    "resources": s.Resources("250m", "256Mi", "2", "1Gi", doc="Requests and limits of each Vault server container."),
    "init": s.Dict({
        "key_shares": s.Int(5, minimum=1, maximum=MAX_SHARES, doc="Unseal (or, with an auto-unseal seal, "
                                                                  "recovery) key shares made at initialisation."),
        "key_threshold": s.Int(3, minimum=1, maximum=MAX_SHARES, doc="Shares needed to unseal; at most key_shares."),
        "pgp_keys": s.List(s.Str(), default=[], doc="Base64 PGP public keys, one per share: each share is handed "
                                                    "out encrypted to its key instead of kept by the controller."),
        "root_token_pgp_key": s.Str(None, nullable=True, doc="Base64 PGP public key the initial root token is "
                                                             "encrypted to."),
        "keep_root_token": s.Bool(False, doc="Keep the initial root token (in Vault and in the keys file) "
                                             "instead of revoking it once Vault is configured."),
    }, doc="How the vault stage initialises Vault, once."),
    "seal": s.Dict({
        "type": s.Str("shamir", choices=SEAL_TYPES,
                      doc="shamir (unseal keys), or auto-unseal with transit (another Vault) or awskms (AWS KMS)."),
        "address": s.Str(None, nullable=True, doc="transit: URL of the Vault that holds the key."),
        "key_name": s.Str(None, nullable=True, doc="transit: name of the transit key."),
        "mount_path": s.Str("transit/", doc="transit: mount path of the transit engine."),
        "region": s.Str(None, nullable=True, doc="awskms: AWS region of the key."),
        "kms_key_id": s.Str(None, nullable=True, doc="awskms: id, ARN or alias of the KMS key."),
        "credentials_secret_name": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                                         doc="Secret in Vault's namespace with the seal's credentials: transit: "
                                             "key 'token'; awskms: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                             "(leave unset to use the node's instance role)."),
    }, doc="Vault's seal; an auto-unseal seal opens every server by itself after a restart."),
}


def server_labels():
    """Labels of the Vault server pods, as the chart sets them."""
    return {"app.kubernetes.io/name": "vault", "app.kubernetes.io/instance": RELEASE, "component": "server"}


def scheme(settings):
    return "https" if settings["tls_secret_name"] else "http"


def address(spec):
    """URL of the Vault API for in-cluster clients (the Service that spans all servers)."""
    settings = spec["components"]["vault"]
    return "%s://%s.%s.svc:%d" % (scheme(settings), RELEASE, settings["namespace"], API_PORT)


def _monitoring(spec):
    return common.enabled(spec, "monitoring")


def _consul_acls(spec):
    return bool((spec["components"].get("consul") or {}).get("acls"))


def _listener(spec, settings):
    lines = ['  address = "[::]:%d"' % API_PORT, '  cluster_address = "[::]:%d"' % CLUSTER_PORT]
    if settings["tls_secret_name"]:
        lines += ['  tls_cert_file = "%s/tls.crt"' % TLS_DIR, '  tls_key_file = "%s/tls.key"' % TLS_DIR]
    else:
        lines.append("  tls_disable = 1")
    if _monitoring(spec):
        # Prometheus scrapes /v1/sys/metrics without a Vault token.
        lines += ["  telemetry {", '    unauthenticated_metrics_access = "true"', "  }"]
    return ['listener "tcp" {'] + lines + ["}"]


def config(spec, settings):
    """The server configuration (HCL) for HA mode."""
    lines = ["ui = %s" % ("true" if settings["ui"] else "false"), "disable_mlock = true", ""]
    lines += _listener(spec, settings)
    lines += [
        "",
        'storage "consul" {',
        '  address = "%s"' % consul.server_address(spec),
        '  scheme = "http"',
        '  path = "%s"' % CONSUL_PATH,
        "}",
        "",
        # Leader/standby labels on the pods, which the vault-active Service selects.
        'service_registration "kubernetes" {}',
    ]
    lines += _seal_stanza(settings["seal"])
    if _monitoring(spec):
        lines += ["", "telemetry {", '  prometheus_retention_time = "30s"', "  disable_hostname = true", "}"]
    return "\n".join(lines) + "\n"


def _seal_stanza(seal):
    """The auto-unseal seal's block; its credentials come from the environment, never from here."""
    if seal["type"] == "transit":
        fields = [("address", seal["address"]), ("key_name", seal["key_name"]), ("mount_path", seal["mount_path"])]
    elif seal["type"] == "awskms":
        fields = [("region", seal["region"]), ("kms_key_id", seal["kms_key_id"])]
    else:
        return []
    return ["", 'seal "%s" {' % seal["type"]] + ['  %s = "%s"' % item for item in fields] + ["}"]


def _seal_environment(seal):
    """Environment variables the seal reads its credentials from (a Secret in Vault's namespace)."""
    name = seal["credentials_secret_name"]
    if not name or seal["type"] == "shamir":
        return []
    keys = ["token"] if seal["type"] == "transit" else ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
    env = ["VAULT_TOKEN"] if seal["type"] == "transit" else keys
    return [{"envName": e, "secretKey": k, "secretName": name} for e, k in zip(env, keys)]


def _seal_port(seal):
    """The port the seal's key service listens on: the transit Vault's, or HTTPS for a cloud KMS."""
    if seal["type"] == "transit":
        rest = seal["address"].split("://", 1)[-1].split("/", 1)[0]
        host_port = rest.rsplit("]", 1)[-1]
        if ":" in host_port:
            return int(host_port.rsplit(":", 1)[1])
        return HTTPS_PORT if seal["address"].startswith("https") else API_PORT
    return HTTPS_PORT


def _security_context():
    pod = {"runAsNonRoot": True, "runAsUser": RUN_AS_USER, "runAsGroup": RUN_AS_GROUP, "fsGroup": RUN_AS_GROUP,
           "seccompProfile": {"type": "RuntimeDefault"}}
    container = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {"pod": pod, "container": container}


def _server(spec, settings):
    replicas = settings["replicas"]
    server = dict(common.placement(spec, settings["pool"]), **{
        "resources": dict((k, dict(v)) for k, v in settings["resources"].items()),
        # Data lives in Consul; no PVC per pod.
        "dataStorage": {"enabled": False},
        "statefulSet": {"securityContext": _security_context()},
        "ha": {
            "enabled": True,
            "replicas": replicas,
            "raft": {"enabled": False},
            "config": config(spec, settings),
            # Any one unsealed server serves, so keep a majority and let the rest drain.
            "disruptionBudget": {"enabled": replicas > 1,
                                 "maxUnavailable": max(1, replicas - common.pdb_min_available(replicas))},
        },
    })
    secret_env = []
    if _consul_acls(spec):
        # Read by Vault's Consul client; a Secret, since Vault cannot hold its own storage token.
        secret_env.append({"envName": "CONSUL_HTTP_TOKEN", "secretKey": "token",
                           "secretName": settings["consul_token_secret_name"]})
    secret_env += _seal_environment(settings["seal"])
    if secret_env:
        server["extraSecretEnvironmentVars"] = secret_env
    if settings["tls_secret_name"]:
        server["volumes"] = [{"name": "tls", "secret": {"secretName": settings["tls_secret_name"]}}]
        server["volumeMounts"] = [{"name": "tls", "mountPath": TLS_DIR, "readOnly": True}]
        # The chart's probes and CLI use https://127.0.0.1:8200.
        server["extraEnvironmentVars"] = {"VAULT_CACERT": TLS_DIR + "/ca.crt"}
    return server


def _injector(spec, settings):
    if not settings["injector"]:
        return {"enabled": False}
    security = _security_context()
    security["container"]["runAsNonRoot"] = True
    return dict(common.placement(spec, settings["pool"]), **{
        "enabled": True,
        "replicas": INJECTOR_REPLICAS,
        "securityContext": security,
        "podDisruptionBudget": {"maxUnavailable": 1},
    })


def values(spec, settings):
    result = {
        "global": {"enabled": True, "tlsDisable": not settings["tls_secret_name"]},
        "injector": _injector(spec, settings),
        "server": _server(spec, settings),
        "ui": {"enabled": settings["ui"], "serviceType": "ClusterIP"},
        "csi": {"enabled": False},
    }
    if _monitoring(spec):
        # The chart's prometheusRules renders nothing without rules of our own: it ships none.
        result["serverTelemetry"] = {"serviceMonitor": _service_monitor(settings)}
    return result


def _service_monitor(settings):
    """The chart's ServiceMonitor, over every server rather than the active one alone.

    Its default Service (vault-active) loses a server as soon as it seals, so vault_core_unsealed
    would never read 0.  vault-internal lists every server, ready or not, and with unauthenticated
    metrics each one answers /v1/sys/metrics for itself (standbys included, without forwarding).
    The release label the chart adds by default is harmless: kube-prometheus-stack selects every
    ServiceMonitor here.
    """
    monitor = {"enabled": True, "interval": "30s", "scrapeTimeout": "10s",
               "matchLabels": {"vault-internal": "true"}}
    if settings["tls_secret_name"]:
        # Prometheus dials pod addresses: check the certificate against the name it is issued for.
        monitor["tlsConfig"] = {"ca": {"secret": {"name": settings["tls_secret_name"], "key": CA_KEY}},
                                "serverName": "%s.%s.svc" % (RELEASE, settings["namespace"])}
    return monitor


def _api_clients(spec, settings):
    if settings["injector"]:
        # Injected agents run in the workloads' own namespaces.
        return [{"namespaceSelector": {}}]
    clients = []
    eso = spec["components"].get("external_secrets") or {}
    if eso.get("enabled"):
        clients.append(common.namespace_peer(eso["namespace"]))
    if _monitoring(spec):
        clients.append(common.namespace_peer(spec["components"]["monitoring"]["namespace"]))
    return clients


def network_policies(spec, settings):
    """Every list is built afresh: shared objects would come out as YAML anchors."""
    namespace = settings["namespace"]

    def servers():
        return [common.namespace_peer(namespace, server_labels())]

    policies = common.baseline_policies(namespace) + [
        # TokenReview for Kubernetes auth, and the active/standby pod labels.
        common.allow_apiserver(spec, namespace, server_labels()),
        # Standbys forward requests to the active server over the cluster port.
        common.network_policy("allow-server-cluster", namespace, server_labels(),
                              ingress=[{"from": servers(), "ports": common.tcp_ports(API_PORT, CLUSTER_PORT)}],
                              egress=[{"to": servers(), "ports": common.tcp_ports(API_PORT, CLUSTER_PORT)}]),
        common.network_policy("allow-consul", namespace, server_labels(), egress=[{
            "to": [common.namespace_peer(spec["components"]["consul"]["namespace"], consul.server_labels())],
            "ports": common.tcp_ports(consul.HTTP_PORT),
        }]),
    ]
    if settings["seal"]["type"] != "shamir":
        # Every server asks the seal's key service to unseal it, after each start.
        policies.append(common.allow_to("allow-seal", namespace, server_labels(), ["0.0.0.0/0", "::/0"],
                                        [_seal_port(settings["seal"])]))
    clients = _api_clients(spec, settings)
    if clients:
        policies.append(common.network_policy("allow-api-clients", namespace, server_labels(),
                                              ingress=[{"from": clients, "ports": common.tcp_ports(API_PORT)}]))
    if settings["injector"]:
        policies += _injector_policies(spec, namespace)
    return policies


def _injector_policies(spec, namespace):
    labels = {"app.kubernetes.io/name": "vault-agent-injector", "component": "webhook"}
    # The API server calls the webhook from the host network: no namespace to match.
    webhook = common.network_policy("allow-injector-webhook", namespace, labels,
                                    ingress=[{"ports": common.tcp_ports(INJECTOR_PORT)}])
    apiserver = common.allow_apiserver(spec, namespace, labels)
    apiserver["metadata"]["name"] = "allow-apiserver-injector"
    return [webhook, apiserver]


def manifests(spec, settings):
    return network_policies(spec, settings)


def check(spec, settings, errors, path):
    common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"], what="Vault servers")
    if settings["injector"]:
        # The chart keeps injector pods on separate hosts.
        common.check_fits_pool(spec, settings, errors, path + ".injector", INJECTOR_REPLICAS,
                               what="injector replicas")
    if settings["backend"] == "consul" and not common.enabled(spec, "consul"):
        errors.add(path + ".backend", "consul",
                   "needs plinth_components.consul.enabled: true (Vault stores its data in the in-cluster Consul)")
    if settings["tls_secret_name"] and not settings["tls_ca_certificate"]:
        errors.add(path + ".tls_ca_certificate", None, "required with tls_secret_name: each SecretStore "
                   "verifies Vault's certificate with it")
    if settings["tls_ca_certificate"] and not settings["tls_secret_name"]:
        errors.add(path + ".tls_ca_certificate", "(a certificate)", "only applies with tls_secret_name")
    _check_init(settings["init"], errors, path + ".init")
    _check_seal(settings["seal"], errors, path + ".seal")


def _check_init(init, errors, path):
    if init["key_threshold"] > init["key_shares"]:
        errors.add(path + ".key_threshold", init["key_threshold"],
                   "must not exceed key_shares (%d): the keys could never unseal Vault" % init["key_shares"])
    if init["key_shares"] > 1 and init["key_threshold"] == 1:
        errors.add(path + ".key_threshold", 1, "must be at least 2 when there are several shares: "
                   "any one holder could open Vault alone (use key_shares: 1 to say so)")
    if init["pgp_keys"] and len(init["pgp_keys"]) != init["key_shares"]:
        errors.add(path + ".pgp_keys", "%d keys" % len(init["pgp_keys"]),
                   "must hold one key per share (key_shares is %d)" % init["key_shares"])


def _check_seal(seal, errors, path):
    kind = seal["type"]
    for field in SEAL_REQUIRED.get(kind, ()):
        if not seal[field]:
            errors.add(path + "." + field, seal[field], "required with seal type %s" % kind)
    allowed = SEAL_FIELDS.get(kind, ())
    for field in ("address", "key_name", "region", "kms_key_id", "credentials_secret_name"):
        if seal[field] and field not in allowed:
            errors.add(path + "." + field, seal[field], "only applies to seal type %s, not %s"
                       % (" or ".join(t for t in SEAL_FIELDS if field in SEAL_FIELDS[t]), kind))
    if kind == "transit" and seal["address"] and not seal["address"].startswith(("https://", "http://")):
        errors.add(path + ".address", seal["address"], "must be an http(s):// URL of the transit Vault")
    for field in ("address", "key_name", "mount_path", "region", "kms_key_id"):
        if seal[field] and '"' in seal[field]:
            errors.add(path + "." + field, seal[field], "must not contain a double quote (it goes into Vault's "
                       "configuration)")


COMPONENT = Component(
    key="vault", title="Vault", namespace="vault", project="platform", pool="worker", enabled=True,
    pod_security="restricted",
    options=OPTIONS,
    check=check,
    releases=[Release(RELEASE, 40, {"repo": "https://helm.releases.hashicorp.com", "name": "vault",
                                    "version": "0.34.1"},
                      values=values, manifests=manifests)],
    doc="HA Vault on the Consul storage backend.",
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""External Secrets Operator and the SecretStores that read Vault.

The controller, the webhook and the cert controller all run ``replicas``
pods spread over the pool's hosts; the controller and the cert controller
elect a leader, the webhook serves from every pod.

Least privilege: there is no ClusterSecretStore.  Every namespace that holds
an ExternalSecret gets its own SecretStore (``store_name``) and a
ServiceAccount (``reader_service_account``) that no pod runs as.  The
controller requests a token for that ServiceAccount and logs in through
Vault's Kubernetes auth method (mount ``kubernetes``) with the namespace's
own role, ``<vault_role_prefix><namespace>``, whose policy of the same name
admits only the KV v2 paths (under ``vault_kv_path``) that the namespace's
ExternalSecrets read.  Those roles and policies are not set up by hand:
``secret_access.secret_access`` (the ``plinth.platform.vault_access``
filter) computes them from the same ExternalSecrets the tree carries, and
the Ansible stage that configures Vault applies them.

Cloud stores (``stores``): ClusterSecretStores for AWS Secrets Manager or
Parameter Store, beside Vault.  An app secret reads one by naming it
(``plinth_apps[].secrets.<name>.store``); such ExternalSecrets never appear
in Vault's policies.  Each store admits only the namespaces of the app
secrets that name it (and those listed in its ``namespaces``), and a store
no namespace reads is not rendered at all: a ClusterSecretStore without
conditions would serve every namespace.  Credentials are never written
here: either a Secret in this component's namespace that the operator
creates out of band (``auth.secret_name``), or a ServiceAccount token
exchanged for an IAM role (``auth.service_account``).
"""

from __future__ import absolute_import, annotations, division, print_function

import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import cloudflared
from ansible_collections.plinth.platform.plugins.module_utils.components import common
from ansible_collections.plinth.platform.plugins.module_utils.components import vault

__metaclass__ = type

RELEASE = "external-secrets"
# Release name == chart name, so the chart's fullname (and ServiceAccount) is the release name.
CONTROLLER_SA = RELEASE
WEBHOOK_PORT = 10250
METRICS_PORT = 8080
VAULT_AUTH_MOUNT = "kubernetes"
ROLE_PREFIX = re.compile(r"^[A-Za-z0-9_.-]*$")
AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")
IAM_ROLE = re.compile(r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
AWS_API_PORT = 443


def vault_name_prefix(value):
    if not ROLE_PREFIX.match(value):
        return "must be letters, digits, '-', '_' and '.' (it starts a Vault role and policy name)"
    return None


def aws_region(value):
    if not AWS_REGION.match(value):
        return "must be an AWS region like eu-central-1"
    return None


def iam_role(value):
    if not IAM_ROLE.match(value):
        return "must be an IAM role ARN like arn:aws:iam::123456789012:role/plinth-secrets"
    return None


def secret_key(value):
    if not SECRET_KEY.match(value):
        return "must be a Secret data key: letters, digits, '-', '_' and '.'"
    return None


STORE = s.Dict({
    "name": s.Str(checks=[s.dns_subdomain], doc="Name of the ClusterSecretStore; app secrets name it in 'store'."),
    "provider": s.Str(choices=["aws"], doc="Only AWS so far."),
    "region": s.Str(checks=[aws_region]),
    "service": s.Str("SecretsManager", choices=["SecretsManager", "ParameterStore"]),
    "role": s.Str(None, nullable=True, checks=[iam_role],
                  doc="IAM role assumed after authenticating; null reads as the authenticated identity."),
    "auth": s.Dict({
        "secret_name": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                             doc="Secret in this component's namespace, created out of band, holding the "
                                 "access key pair"),
        "access_key_id_key": s.Str("access-key-id", checks=[secret_key]),
        "secret_access_key_key": s.Str("secret-access-key", checks=[secret_key]),
        "service_account": s.Str(None, nullable=True, checks=[s.dns_subdomain],
                                 doc="ServiceAccount in this component's namespace, created out of band, whose "
                                     "token AWS exchanges for an IAM role (IRSA or web identity)"),
    }, doc="Exactly one of secret_name and service_account; credentials are never given here."),
    "namespaces": s.List(s.Str(checks=[s.dns_label]), default=[],
                         doc="Namespaces admitted beyond those of the app secrets that name the store."),
})


OPTIONS = {
    "replicas": s.Int(2, minimum=1, doc="Pods of the controller, the webhook and the cert controller each."),
    "store_name": s.Str("vault", checks=[s.dns_subdomain],
                        doc="Name of the SecretStore in each namespace that holds ExternalSecrets; "
                            "every generated ExternalSecret uses the one of its own namespace."),
    "vault_kv_path": s.Str("secret", doc="Mount path of Vault's KV v2 engine."),
    "vault_role_prefix": s.Str("plinth-", checks=[vault_name_prefix],
                               doc="Prefix of the Vault Kubernetes-auth role (and policy) of each such "
                                   "namespace: role <prefix><namespace>, bound to that namespace's "
                                   "reader_service_account alone."),
    "reader_service_account": s.Str("vault-secrets-reader", checks=[s.dns_subdomain],
                                    doc="ServiceAccount in each such namespace that its SecretStore logs in "
                                        "to Vault as; no pod runs as it."),
    "refresh_interval": s.Str(common.DEFAULT_REFRESH, checks=[common.go_duration],
                              doc="How often every ExternalSecret re-reads its source unless it sets its own "
                                  "(plinth_apps[].secrets.<name>.refresh): a rotated value reaches the Secret "
                                  "within it."),
    "stores": s.List(STORE, default=[],
                     doc="ClusterSecretStores of cloud secret managers, beside Vault's per-namespace "
                         "SecretStores."),
}


def _labels(suffix=""):
    return {"app.kubernetes.io/name": RELEASE + suffix, "app.kubernetes.io/instance": RELEASE}


def _monitoring(spec):
    return common.enabled(spec, "monitoring")


def _deployment(spec, settings):
    """Keys shared by the three Deployments: replicas are set by the caller's key name."""
    replicas = settings["replicas"]
    return dict(common.placement(spec, settings["pool"]), **{
        # No labelSelector: the chart fills in each Deployment's own selector labels.
        # pod-template-hash: during a rollout only pods of the same revision count.
        "topologySpreadConstraints": [{
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "matchLabelKeys": ["pod-template-hash"],
        }],
        "podDisruptionBudget": {"enabled": replicas > 1, "minAvailable": common.pdb_min_available(replicas)},
    })


def values(spec, settings):
    replicas = settings["replicas"]
    result = dict(_deployment(spec, settings), **{
        "installCRDs": True,
        "replicaCount": replicas,
        "leaderElect": True,
        "webhook": dict(_deployment(spec, settings), replicaCount=replicas, port=WEBHOOK_PORT),
        "certController": dict(_deployment(spec, settings), replicaCount=replicas),
    })
    if _monitoring(spec):
        # The ServiceMonitor CRD is installed in an earlier wave; rendering must not depend on
        # what the cluster reports at template time.
        result["serviceMonitor"] = {"enabled": True, "renderMode": "alwaysRender"}
    return result


def role(spec, namespace):
    """The Vault Kubernetes-auth role, and the policy of the same name, of ``namespace``'s SecretStore."""
    return spec["components"]["external_secrets"]["vault_role_prefix"] + namespace


def reader_service_account(spec, namespace, annotations=None):
    """The ServiceAccount ``namespace``'s SecretStore logs in to Vault as: a token holder, no pod's identity."""
    name = spec["components"]["external_secrets"]["reader_service_account"]
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": common.metadata(name, namespace, annotations=annotations),
        "automountServiceAccountToken": False,
    }


def secret_store(spec, namespace, annotations=None):
    """The SecretStore of ``namespace``: Vault's KV v2 engine, read with the namespace's own role."""
    settings = spec["components"]["external_secrets"]
    provider = {
        "server": vault.address(spec),
        "path": settings["vault_kv_path"],
        "version": "v2",
        "auth": {"kubernetes": {
            "mountPath": VAULT_AUTH_MOUNT,
            "role": role(spec, namespace),
            "serviceAccountRef": {"name": settings["reader_service_account"]},
        }},
    }
    if spec["components"]["vault"].get("tls_secret_name"):
        # ESO reads a SecretStore's CA from the store's own namespace: caProvider.namespace is for
        # ClusterSecretStores only.
        provider["caProvider"] = {"type": "ConfigMap", "name": vault.CA_CONFIG_MAP, "key": vault.CA_KEY}
    return {
        "apiVersion": common.ESO_API,
        "kind": "SecretStore",
        "metadata": common.metadata(common.secret_store(spec), namespace, annotations=annotations),
        "spec": {"provider": {"vault": provider}},
    }


def secret_access_objects(spec, namespace, sync_options=None, wave=-1):
    """The reader ServiceAccount and the SecretStore that ``namespace``'s ExternalSecrets need.

    They sync in ``wave``, before the ExternalSecrets of their Application; ``sync_options`` are
    the ExternalSecrets' own (SkipDryRunOnMissingResource where the ESO CRDs come in a later wave).
    """
    wave = {"argocd.argoproj.io/sync-wave": str(wave)}
    store_annotations = dict(wave, **({"argocd.argoproj.io/sync-options": sync_options} if sync_options else {}))
    objects = [reader_service_account(spec, namespace, wave), secret_store(spec, namespace, store_annotations)]
    ca = vault.ca_config_map(spec, namespace, wave)
    return objects + ([ca] if ca else [])


def reads_vault(external_secret):
    """Whether ``external_secret`` reads Vault through its namespace's SecretStore (not a ClusterSecretStore)."""
    ref = (external_secret.get("spec") or {}).get("secretStoreRef") or {}
    return ref.get("kind", "SecretStore") == "SecretStore"


def store_namespaces(spec, store):
    """The namespaces ClusterSecretStore ``store`` admits: its own list and those of the app secrets naming it."""
    namespaces = set(store["namespaces"])
    for app in spec["apps"]:
        if any((ref or {}).get("store") == store["name"] for ref in (app.get("secrets") or {}).values()):
            namespaces.add(app["namespace"])
    return sorted(namespaces)


def _aws_auth(settings, auth):
    namespace = settings["namespace"]
    if auth["service_account"]:
        return {"jwt": {"serviceAccountRef": {"name": auth["service_account"], "namespace": namespace}}}
    return {"secretRef": {
        "accessKeyIDSecretRef": {"name": auth["secret_name"], "namespace": namespace,
                                 "key": auth["access_key_id_key"]},
        "secretAccessKeySecretRef": {"name": auth["secret_name"], "namespace": namespace,
                                     "key": auth["secret_access_key_key"]},
    }}


def cluster_secret_store(spec, settings, store):
    """The ClusterSecretStore of ``store``, admitting ``store_namespaces`` only; None when it admits none."""
    namespaces = store_namespaces(spec, store)
    if not namespaces:
        return None
    provider = {"service": store["service"], "region": store["region"], "auth": _aws_auth(settings, store["auth"])}
    if store["role"]:
        provider["role"] = store["role"]
    return {
        "apiVersion": common.ESO_API,
        "kind": "ClusterSecretStore",
        # After the chart's webhook is up in this Application, whose CRDs are missing on a first dry run.
        "metadata": common.metadata(store["name"], annotations={
            "argocd.argoproj.io/sync-wave": "1",
            "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true",
        }),
        "spec": {"conditions": [{"namespaces": namespaces}], "provider": {store["provider"]: provider}},
    }


def cluster_secret_stores(spec, settings):
    stores = (cluster_secret_store(spec, settings, store) for store in settings["stores"])
    return [store for store in stores if store]


def network_policies(spec, settings):
    namespace = settings["namespace"]
    vault_settings = spec["components"]["vault"]
    policies = common.baseline_policies(namespace) + [
        common.allow_apiserver(spec, namespace),
        common.allow_to("allow-vault", namespace, _labels(), [vault_settings["namespace"]], [vault.API_PORT]),
        # The API server calls the webhook from the host network: no namespace to match.
        common.allow_from("allow-webhook", namespace, _labels("-webhook"), None, [WEBHOOK_PORT]),
    ]
    if settings["stores"]:
        # The AWS APIs (and STS) on the public internet, never a cluster or private address.
        policies.append(common.network_policy("allow-aws", namespace, _labels(), egress=[{
            "to": cloudflared.internet_blocks(spec), "ports": common.tcp_ports(AWS_API_PORT)}]))
    if _monitoring(spec):
        policies.append(common.allow_from("allow-metrics", namespace, {"app.kubernetes.io/instance": RELEASE},
                                          [spec["components"]["monitoring"]["namespace"]], [METRICS_PORT]))
    return policies


def manifests(spec, settings):
    # The SecretStores live in the namespaces that read secrets, with their ExternalSecrets.
    return network_policies(spec, settings) + cluster_secret_stores(spec, settings)


def check(spec, settings, errors, path):
    if not common.enabled(spec, "vault"):
        errors.add(path + ".enabled", True,
                   "the SecretStores read the in-cluster Vault: needs plinth_components.vault.enabled: true")
    _check_stores(settings, errors, path + ".stores")
    _check_app_secrets(spec, settings, errors)


def _check_stores(settings, errors, path):
    seen = {}
    for index, store in enumerate(settings["stores"]):
        where = "%s[%d]" % (path, index)
        if not store or not store.get("name"):
            continue  # reported by the schema
        if store["name"] in seen:
            errors.add(where + ".name", store["name"], "store names must be unique (also used by %s[%d])"
                       % (path, seen[store["name"]]))
        seen.setdefault(store["name"], index)
        auth = store.get("auth") or {}
        given = [key for key in ("secret_name", "service_account") if auth.get(key)]
        if len(given) != 1:
            errors.add(where + ".auth", sorted(given), "set exactly one of secret_name (a Secret with the access "
                       "key pair, created out of band in namespace %s) and service_account (a ServiceAccount "
                       "there whose token AWS exchanges for a role)" % settings["namespace"])


def _check_app_secrets(spec, settings, errors):
    """Each app secret's ``refresh`` is a duration ESO parses and its ``store`` a store of ``stores``."""
    names = sorted(store["name"] for store in settings["stores"] if store and store.get("name"))
    for index, app in enumerate(spec["apps"]):
        for secret, ref in sorted((app.get("secrets") or {}).items()):
            where = "plinth_apps[%d].secrets.%s" % (index, secret)
            refresh = (ref or {}).get("refresh")
            rule = common.go_duration(refresh) if refresh is not None else None
            if rule:
                errors.add(where + ".refresh", refresh, rule)
            store = (ref or {}).get("store")
            if store is not None and store not in names:
                errors.add(where + ".store", store, "no such store in plinth_components.external_secrets.stores "
                           "(known: %s); leave it out to read Vault" % (", ".join(names) or "none"))


COMPONENT = Component(
    key="external_secrets", title="External Secrets Operator", namespace="external-secrets",
    project="platform", pool="worker", enabled=True, pod_security="restricted",
    options=OPTIONS,
    check=check,
    releases=[Release(RELEASE, 50, {"repo": "https://charts.external-secrets.io",
                                    "name": "external-secrets", "version": "2.9.0"},
                      values=values, manifests=manifests,
                      # Its CRDs exceed the 262,144 bytes of client-side apply's last-applied annotation.
                      server_side_apply=True)],
    doc="External Secrets Operator; each namespace that reads secrets gets a SecretStore for Vault "
        "with a Vault role of its own; cloud secret managers become ClusterSecretStores.",
)

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""External Secrets Operator and the ClusterSecretStore that reads Vault.

The controller, the webhook and the cert controller all run ``replicas``
pods spread over the pool's hosts; the controller and the cert controller
elect a leader, the webhook serves from every pod.  The ClusterSecretStore
authenticates with the controller's ServiceAccount through Vault's Kubernetes
auth method (mount ``kubernetes``, role ``vault_role``), which the operator
sets up in Vault along with the KV v2 engine at ``vault_kv_path``.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common
from ansible_collections.plinth.platform.plugins.module_utils.components import vault

__metaclass__ = type

RELEASE = "external-secrets"
# Release name == chart name, so the chart's fullname (and ServiceAccount) is the release name.
CONTROLLER_SA = RELEASE
WEBHOOK_PORT = 10250
METRICS_PORT = 8080
VAULT_AUTH_MOUNT = "kubernetes"

OPTIONS = {
    "replicas": s.Int(2, minimum=1, doc="Pods of the controller, the webhook and the cert controller each."),
    "store_name": s.Str("vault", checks=[s.dns_subdomain],
                        doc="Name of the ClusterSecretStore every generated ExternalSecret uses."),
    "vault_kv_path": s.Str("secret", doc="Mount path of Vault's KV v2 engine."),
    "vault_role": s.Str("external-secrets", doc="Vault Kubernetes-auth role bound to the controller's "
                                                "ServiceAccount."),
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


def cluster_secret_store(spec, settings):
    provider = {
        "server": vault.address(spec),
        "path": settings["vault_kv_path"],
        "version": "v2",
        "auth": {"kubernetes": {
            "mountPath": VAULT_AUTH_MOUNT,
            "role": settings["vault_role"],
            "serviceAccountRef": {"name": CONTROLLER_SA, "namespace": settings["namespace"]},
        }},
    }
    vault_settings = spec["components"]["vault"]
    if vault_settings.get("tls_secret_name"):
        provider["caProvider"] = {"type": "Secret", "name": vault_settings["tls_secret_name"],
                                  "namespace": vault_settings["namespace"], "key": "ca.crt"}
    return {
        "apiVersion": common.ESO_API,
        "kind": "ClusterSecretStore",
        "metadata": common.metadata(settings["store_name"], annotations={
            # After the chart's CRDs and a ready webhook (wave 0), which validates stores.
            "argocd.argoproj.io/sync-wave": "1",
            "argocd.argoproj.io/sync-options": "SkipDryRunOnMissingResource=true",
        }),
        "spec": {"provider": {"vault": provider}},
    }


def network_policies(spec, settings):
    namespace = settings["namespace"]
    vault_settings = spec["components"]["vault"]
    policies = common.baseline_policies(namespace) + [
        common.allow_apiserver(spec, namespace),
        common.allow_to("allow-vault", namespace, _labels(), [vault_settings["namespace"]], [vault.API_PORT]),
        # The API server calls the webhook from the host network: no namespace to match.
        common.allow_from("allow-webhook", namespace, _labels("-webhook"), None, [WEBHOOK_PORT]),
    ]
    if _monitoring(spec):
        policies.append(common.allow_from("allow-metrics", namespace, {"app.kubernetes.io/instance": RELEASE},
                                          [spec["components"]["monitoring"]["namespace"]], [METRICS_PORT]))
    return policies


def manifests(spec, settings):
    return [cluster_secret_store(spec, settings)] + network_policies(spec, settings)


def check(spec, settings, errors, path):
    if not common.enabled(spec, "vault"):
        errors.add(path + ".enabled", True,
                   "the ClusterSecretStore reads the in-cluster Vault: needs plinth_components.vault.enabled: true")


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
    doc="External Secrets Operator with a ClusterSecretStore for Vault.",
)

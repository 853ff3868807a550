# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Building blocks shared by the component value generators.

Everything here works on the normalized spec (plain dicts) and returns plain
dicts, ready to be dumped as YAML.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

__metaclass__ = type

ESO_API = "external-secrets.io/v1"


def enabled(spec, key):
    """Whether component ``key`` is enabled in this inventory."""
    return bool((spec["components"].get(key) or {}).get("enabled"))


def storage_class(spec, explicit=None):
    """``explicit``, else Rook-Ceph's default class when Rook is enabled, else None (the cluster default)."""
    if explicit:
        return explicit
    if enabled(spec, "rook_ceph"):
        return spec["components"]["rook_ceph"]["storage_class"]
    return None


def pool(spec, name):
    """The normalized node pool ``name`` ({group, labels, taints, hosts})."""
    return spec["node_pools"][name]


def node_selector(spec, pool_name):
    if pool_name is None:
        return {}
    return dict(pool(spec, pool_name)["labels"])


def tolerations(spec, pool_name):
    """Tolerations for every taint of the pool, so its pods may land there."""
    if pool_name is None:
        return []
    return [
        {"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]}
        for t in pool(spec, pool_name)["taints"]
    ]


def node_affinity(spec, pool_name):
    """A required node affinity equivalent to the pool's node selector."""
    labels = node_selector(spec, pool_name)
    if not labels:
        return {}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{
                    "matchExpressions": [
                        {"key": key, "operator": "In", "values": [value]}
                        for key, value in sorted(labels.items())
                    ]
                }]
            }
        }
    }


def placement(spec, pool_name):
    """``nodeSelector`` and ``tolerations`` keys for charts that take both."""
    return {"nodeSelector": node_selector(spec, pool_name), "tolerations": tolerations(spec, pool_name)}


def spread(match_labels, topology_key="kubernetes.io/hostname", when_unsatisfiable="DoNotSchedule"):
    """One topology spread constraint over hosts for pods carrying ``match_labels``."""
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": when_unsatisfiable,
        "labelSelector": {"matchLabels": dict(match_labels)},
    }


def anti_affinity(match_labels, topology_key="kubernetes.io/hostname"):
    """Required pod anti-affinity: at most one such pod per host."""
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": dict(match_labels)},
                "topologyKey": topology_key,
            }]
        }
    }


def metadata(name, namespace=None, labels=None, annotations=None):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = dict({"app.kubernetes.io/managed-by": "plinth"}, **(labels or {}))
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def secret_store(spec):
    """Name of the SecretStore, in each namespace that holds ExternalSecrets, that reads from Vault."""
    return spec["components"]["external_secrets"]["store_name"]


def external_secret(spec, name, namespace, data, target=None, template=None, refresh=None, store=None,
                    reload=True):
    """An ExternalSecret that syncs Secret ``target`` from Vault.

    ``data`` maps each key of the target Secret to ``(vault_path, property)``;
    only references are written, never a secret value.  It reads through the
    SecretStore of its own namespace, which the GitOps tree adds beside it, or
    through the ClusterSecretStore ``store`` when one is named.  ``refresh``
    overrides ``external_secrets.refresh_interval``.  While Reloader is enabled
    the Secret carries ``RELOAD_LABEL`` (unless ``reload`` is false), so the
    workloads that use it restart when its value changes.
    """
    target_spec = {"name": target or name, "creationPolicy": "Owner"}
    template = reload_template(spec, template) if reload else template
    if template:
        target_spec["template"] = template
    return {
        "apiVersion": ESO_API,
        "kind": "ExternalSecret",
        "metadata": metadata(name, namespace),
        "spec": {
            "refreshInterval": refresh or refresh_interval(spec),
            "secretStoreRef": secret_store_ref(spec, store),
            "target": target_spec,
            "data": [
                {"secretKey": key, "remoteRef": {"key": path, "property": prop}}
                for key, (path, prop) in sorted(data.items())
            ],
        },
    }


def network_policy(name, namespace, pod_labels=None, ingress=None, egress=None, types=None):
    """A NetworkPolicy for the pods carrying ``pod_labels`` (every pod of ``namespace`` when empty).

    ``policyTypes`` follows the rules given; ``types`` names them outright for a policy
    without rules, which denies that direction.
    """
    if types is None:
        types = (["Ingress"] if ingress is not None else []) + (["Egress"] if egress is not None else [])
    spec = {"podSelector": {"matchLabels": dict(pod_labels)} if pod_labels else {},
            "policyTypes": list(types)}
    if ingress is not None:
        spec["ingress"] = ingress
    if egress is not None:
        spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(name, namespace),
        "spec": spec,
    }


def namespace_peer(namespace, pod_labels=None):
    """A policy peer: the pods of ``namespace``, only those carrying ``pod_labels`` when given."""
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(pod_labels)}
    return peer


def tcp_ports(*ports):
    """Policy ports, all TCP."""
    return [{"protocol": "TCP", "port": p} for p in ports]


def pod_disruption_budget(name, namespace, pod_labels, replicas, labels=None):
    """A PodDisruptionBudget keeping a majority of ``replicas`` pods carrying ``pod_labels``."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, namespace, labels=labels),
        "spec": {
            "minAvailable": pdb_min_available(replicas),
            "selector": {"matchLabels": dict(pod_labels)},
        },
    }


def default_deny(namespace):
    """Deny all ingress and egress in ``namespace`` unless another policy allows it."""
    return network_policy("default-deny", namespace, types=["Ingress", "Egress"])


def allow_dns(namespace):
    """Let every pod of ``namespace`` resolve names through cluster DNS."""
    return network_policy("allow-dns", namespace, egress=[{
        "to": [namespace_peer("kube-system", {"k8s-app": "kube-dns"})],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }])


def baseline_policies(namespace):
    """What every component namespace starts from: deny all, then let its pods resolve names."""
    return [default_deny(namespace), allow_dns(namespace)]


def allow_apiserver(spec, namespace, pod_selector=None):
    """Egress to the Kubernetes API: the endpoint VIP and every control-plane host."""
    addresses = [spec["control_plane_endpoint"]["host"]]
    addresses += [spec["hosts"][h]["address"] for h in spec["control_plane"]["hosts"]]
    blocks = []
    for address in sorted(set(addresses)):
        if ":" in address:
            blocks.append({"ipBlock": {"cidr": address + "/128"}})
        elif address.replace(".", "").isdigit():
            blocks.append({"ipBlock": {"cidr": address + "/32"}})
    ports = sorted({spec["control_plane_endpoint"]["port"], 6443})
    return network_policy("allow-apiserver", namespace, pod_selector,
                          egress=[{"to": blocks, "ports": tcp_ports(*ports)}])


def controller_policies(spec, namespace, pod_labels, metrics_port):
    """What a namespace holding only a controller needs: the baseline, the Kubernetes API, and
    Prometheus in on ``metrics_port`` when monitoring is enabled."""
    policies = baseline_policies(namespace) + [allow_apiserver(spec, namespace)]
    if enabled(spec, "monitoring"):
        policies.append(allow_from("allow-metrics", namespace, pod_labels,
                                   [spec["components"]["monitoring"]["namespace"]], [metrics_port]))
    return policies


def allow_from(name, namespace, pod_selector, sources, ports):
    """Ingress to ``pod_selector`` from pods in the ``sources`` namespaces (all when empty)."""
    rule = {"ports": tcp_ports(*ports)}
    if sources is not None:
        rule["from"] = [namespace_peer(ns) for ns in sources]
    return network_policy(name, namespace, pod_selector, ingress=[rule])


def allow_to(name, namespace, pod_selector, destinations, ports):
    """Egress from ``pod_selector`` to the ``destinations`` namespaces or CIDRs on ``ports``."""
    peers = []
    for dest in destinations:
        if "/" in dest:
            peers.append({"ipBlock": {"cidr": dest}})
        else:
            peers.append(namespace_peer(dest))
    rule = {"to": peers}
    if ports:
        rule["ports"] = tcp_ports(*ports)
    return network_policy(name, namespace, pod_selector, egress=[rule])


def pdb_min_available(replicas):
    """How many pods a PodDisruptionBudget keeps: a majority, at least one fewer than all."""
    return max(1, min(replicas - 1, replicas // 2 + 1)) if replicas > 1 else 1


def check_fits_pool(spec, settings, errors, path, count, what="replicas"):
    """Report when ``count`` pods spread one per host cannot fit the component's pool."""
    pool_name = settings.get("pool")
    if pool_name not in spec["node_pools"] or not spec["node_pools"][pool_name].get("resolved", True):
        return  # the unknown pool or group is reported once, where it is declared
    hosts = spec["node_pools"][pool_name]["hosts"]
    if count > len(hosts):
        errors.add(path, count, "%d %s need %d hosts in pool %r (group %s has %d)" % (
            count, what, count, pool_name, spec["node_pools"][pool_name]["group"], len(hosts)))


# Reloader watches only Secrets with this label (its resource label selector).
RELOAD_LABEL = ("plinth.io/reload", "true")
DEFAULT_REFRESH = "1h"


def refresh_interval(spec):
    """How often ExternalSecrets re-read their source unless they say otherwise."""
    return (spec["components"].get("external_secrets") or {}).get("refresh_interval") or DEFAULT_REFRESH


def secret_store_ref(spec, store=None):
    """The ``secretStoreRef`` of an ExternalSecret: ClusterSecretStore ``store``, else the namespace's Vault store."""
    if store:
        return {"kind": "ClusterSecretStore", "name": store}
    return {"kind": "SecretStore", "name": secret_store(spec)}


def reload_template(spec, template=None):
    """``template`` with ``RELOAD_LABEL`` among the target Secret's labels while Reloader is enabled.

    A template that only sets metadata keeps the fetched data as the Secret's data.
    """
    if not enabled(spec, "reloader"):
        return template
    template = dict(template or {})
    meta = dict(template.get("metadata") or {})
    meta["labels"] = dict(meta.get("labels") or {}, **{RELOAD_LABEL[0]: RELOAD_LABEL[1]})
    template["metadata"] = meta
    return template


GO_DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")


def go_duration(value):
    """A duration as Kubernetes controllers parse it (Go's time.ParseDuration): 1h, 30m, 1h30m, 90s."""
    if not isinstance(value, str) or not GO_DURATION.match(value) or not re.search(r"[1-9]", value):
        return "must be a positive duration in h, m, s or ms, like 1h, 30m or 1h30m (no d or w)"
    return None

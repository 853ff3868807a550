# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kubelet-csr-approver: approves the serving certificates kubelets ask for, after checking them.

kubeadm's kubelets run with ``serverTLSBootstrap: true``: each asks the cluster CA
for its serving certificate through a CertificateSigningRequest (signer
``kubernetes.io/kubelet-serving``) and renews it before it expires.  Nothing in
Kubernetes approves those requests, yet metrics-server (and ``kubectl logs``
once the API server verifies kubelets) need them signed.  At bootstrap the
``kubelet_serving_certs`` role approves the first ones from Ansible; this release
approves every renewal after that.

Only what the inventory declares is approved: the node name must be one of the
inventory's hosts (an anchored regular expression of their names) and every IP
address in the request must be that host's own (one /32 or /128 per host).

NetworkPolicies: the approver reads and approves requests through the API and
serves nothing but its metrics, which Prometheus alone may scrape.
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress
import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import Component, Release
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RELEASE = "kubelet-csr-approver"
# The chart's metrics.port.
METRICS_PORT = 8080

OPTIONS = {
    "replicas": s.Int(2, minimum=1, doc="approver pods (leader election: one approves at a time)"),
    "resolve_hostnames": s.Bool(False, doc="also require each DNS name in a request to resolve to the "
                                           "node's addresses; off because node names need not be in DNS "
                                           "on bare metal, and the address check already pins each host"),
    "max_expiration_seconds": s.Int(31622400, minimum=3600,
                                    doc="longest certificate lifetime a request may ask for (default 366 days)"),
}


def provider_regex(spec):
    """An anchored regular expression that matches exactly the inventory's host names."""
    return "^(%s)$" % "|".join(re.escape(host) for host in sorted(spec["hosts"]))


def host_prefixes(spec):
    """One single-address prefix per inventory host with an IP address."""
    prefixes = []
    for _host, info in sorted(spec["hosts"].items()):
        try:
            address = ipaddress.ip_address(info["address"])
        except ValueError:
            continue  # a host known by name only: its requests need resolve_hostnames
        prefixes.append("%s/%d" % (address, address.max_prefixlen))
    return prefixes


def _selector():
    return {"app.kubernetes.io/name": RELEASE, "app.kubernetes.io/instance": RELEASE}


def values(spec, settings):
    replicas = settings["replicas"]
    selector = _selector()
    result = dict(common.placement(spec, settings["pool"]), **{
        "replicas": replicas,
        "leaderElection": True,
        "providerRegex": provider_regex(spec),
        "providerIpPrefixes": host_prefixes(spec),
        "bypassDnsResolution": not settings["resolve_hostnames"],
        "maxExpirationSeconds": str(settings["max_expiration_seconds"]),
        "affinity": common.anti_affinity(selector) if replicas > 1 else {},
    })
    if common.enabled(spec, "monitoring"):
        result["metrics"] = {"enable": True, "serviceMonitor": {"enabled": True}}
    return result


def manifests(spec, settings):
    return common.controller_policies(spec, settings["namespace"], _selector(), METRICS_PORT)


def check(spec, settings, errors, path):
    if settings["replicas"] > 1:
        common.check_fits_pool(spec, settings, errors, path + ".replicas", settings["replicas"])


COMPONENT = Component(
    key="kubelet_csr_approver", title="kubelet-csr-approver", namespace="kubelet-csr-approver",
    project="infra", pool="worker", enabled=True, pod_security="restricted",
    options=OPTIONS,
    check=check,
    releases=[Release(RELEASE, 10, {"repo": "https://postfinance.github.io/kubelet-csr-approver",
                                    "name": "kubelet-csr-approver", "version": "1.2.14"},
                      values=values, manifests=manifests)],
    doc="Approves kubelet serving-certificate renewals for the inventory's hosts and addresses only.",
)

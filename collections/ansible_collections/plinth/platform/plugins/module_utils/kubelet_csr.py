# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Which kubelet serving-certificate requests to approve: those of the inventory's hosts only.

A kubelet with ``serverTLSBootstrap`` asks the cluster CA for its serving
certificate through a CertificateSigningRequest.  Approving one blindly would let
any node credential obtain a certificate for any name or address, so a request
is approved only when all of this holds:

* signer ``kubernetes.io/kubelet-serving``, sent by ``system:node:<name>`` of group
  ``system:nodes``, for a ``<name>`` that is a host of the inventory;
* usages limited to a serving certificate (``server auth``, plus ``digital
  signature`` and ``key encipherment``);
* the request's own subject is ``CN=system:node:<name>, O=system:nodes``;
* its DNS names are the host's name (or a longer name starting with it, its
  FQDN), and its IP addresses are the host's inventory address only.
"""

from __future__ import absolute_import, annotations, division, print_function

import base64
import ipaddress

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
except ImportError:  # cryptography comes with ansible-core on the controller, where this runs
    x509 = None

__metaclass__ = type

SIGNER = "kubernetes.io/kubelet-serving"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
SERVING_USAGES = frozenset(("server auth", "digital signature", "key encipherment"))


def is_pending(csr):
    conditions = (csr.get("status") or {}).get("conditions") or []
    return not any(c.get("type") in ("Approved", "Denied", "Failed") for c in conditions)


def node_of(csr):
    """The node a kubelet-serving request speaks for, or None when it is not one."""
    spec = csr.get("spec") or {}
    username = spec.get("username") or ""
    if spec.get("signerName") != SIGNER or not username.startswith(NODE_PREFIX):
        return None
    return username[len(NODE_PREFIX):]


def review(csr, hosts):
    """``None`` when the request may be approved, else the reason it may not.

    ``hosts`` maps each inventory host name to ``{"address": ...}`` as the spec holds them.
    """
    spec = csr.get("spec") or {}
    if spec.get("signerName") != SIGNER:
        return "signer %r is not %s" % (spec.get("signerName"), SIGNER)
    node = node_of(csr)
    if node is None:
        return "requested by %r, not by a node" % spec.get("username")
    if NODES_GROUP not in (spec.get("groups") or []):
        return "requester is not in group %s" % NODES_GROUP
    if node not in hosts:
        return "node %r is not a host of the inventory" % node
    usages = set(spec.get("usages") or [])
    if "server auth" not in usages or usages - SERVING_USAGES:
        return "usages %s are not those of a serving certificate" % sorted(usages)
    try:
        request = x509.load_pem_x509_csr(base64.b64decode(spec.get("request") or ""))
    except ValueError as error:
        return "the request is not a PEM certificate request (%s)" % error
    common_names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    organizations = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if common_names != [NODE_PREFIX + node] or organizations != [NODES_GROUP]:
        return "subject %s is not CN=%s%s, O=%s" % (request.subject.rfc4514_string(), NODE_PREFIX, node, NODES_GROUP)
    try:
        names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the request names no DNS name or address"
    dns = names.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    if not dns and not ips:
        return "the request names no DNS name or address"
    foreign = [name for name in dns if name != node and not name.startswith(node + ".")]
    if foreign:
        return "DNS names %s are not host %s's own" % (sorted(foreign), node)
    own = _address(hosts[node].get("address"))
    strangers = [ip for ip in ips if own is None or ipaddress.ip_address(ip) != own]
    if strangers:
        return "addresses %s are not host %s's inventory address %s" % (
            sorted(strangers), node, hosts[node].get("address"))
    return None


def _address(text):
    try:
        return ipaddress.ip_address(text)
    except (TypeError, ValueError):
        return None


def approval(csr, message):
    """The CSR with an Approved condition added, for its /approval subresource."""
    approved = dict(csr)
    status = dict(csr.get("status") or {})
    status["conditions"] = list(status.get("conditions") or []) + [{
        "type": "Approved", "status": "True", "reason": "PlinthInventoryCheck", "message": message,
    }]
    approved["status"] = status
    return approved

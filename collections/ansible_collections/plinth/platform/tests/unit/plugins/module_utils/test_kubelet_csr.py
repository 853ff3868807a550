# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Which kubelet serving-certificate requests are approved: real PKCS#10 requests, table-driven."""

from __future__ import absolute_import, annotations, division, print_function

import base64
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.plinth.platform.plugins.module_utils import kubelet_csr

__metaclass__ = type

HOSTS = {"worker-1": {"address": "192.0.2.41"}, "cp-1": {"address": "192.0.2.11"}, "named": {"address": "named"}}
KEY = ec.generate_private_key(ec.SECP256R1())


def pem_request(cn="system:node:worker-1", org="system:nodes", dns=("worker-1",), ips=("192.0.2.41",)):
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    csr = builder.sign(KEY, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


def csr(node="worker-1", signer=kubelet_csr.SIGNER, groups=("system:nodes", "system:authenticated"),
        usages=("digital signature", "server auth"), username=None, **request):
    return {"metadata": {"name": "csr-1"}, "spec": {
        "signerName": signer, "username": username or "system:node:" + node, "groups": list(groups),
        "usages": list(usages), "request": pem_request(**request)}}


def test_a_host_asking_for_its_own_name_and_address_is_approved():
    assert kubelet_csr.review(csr(), HOSTS) is None
    assert kubelet_csr.review(csr(dns=("worker-1", "worker-1.example.com")), HOSTS) is None
    assert kubelet_csr.review(csr(dns=()), HOSTS) is None


@pytest.mark.parametrize("request_, reason", [
    (csr(signer="kubernetes.io/kube-apiserver-client-kubelet"),
     "signer 'kubernetes.io/kube-apiserver-client-kubelet' is not kubernetes.io/kubelet-serving"),
    (csr(username="system:serviceaccount:default:x"), "requested by 'system:serviceaccount:default:x', not by a node"),
    (csr(groups=("system:authenticated",)), "requester is not in group system:nodes"),
    (csr(node="intruder", cn="system:node:intruder", dns=("intruder",)),
     "node 'intruder' is not a host of the inventory"),
    (csr(usages=("digital signature", "server auth", "client auth")),
     "usages ['client auth', 'digital signature', 'server auth'] are not those of a serving certificate"),
    (csr(usages=("digital signature",)), "usages ['digital signature'] are not those of a serving certificate"),
    (csr(cn="system:node:cp-1"), "subject CN=system:node:cp-1,O=system:nodes is not CN=system:node:worker-1, "
                                 "O=system:nodes"),
    (csr(org="system:masters"), "subject CN=system:node:worker-1,O=system:masters is not "
                                "CN=system:node:worker-1, O=system:nodes"),
    (csr(dns=("worker-1", "kubernetes.default.svc")),
     "DNS names ['kubernetes.default.svc'] are not host worker-1's own"),
    (csr(dns=("worker-10",)), "DNS names ['worker-10'] are not host worker-1's own"),
    (csr(ips=("192.0.2.41", "192.0.2.10")),
     "addresses ['192.0.2.10'] are not host worker-1's inventory address 192.0.2.41"),
    (csr(dns=(), ips=()), "the request names no DNS name or address"),
    (csr(node="named", cn="system:node:named", dns=("named",), ips=("192.0.2.99",)),
     "addresses ['192.0.2.99'] are not host named's inventory address named"),
])
def test_anything_else_is_refused_with_its_reason(request_, reason):
    assert kubelet_csr.review(request_, HOSTS) == reason


def test_garbage_request_is_refused():
    request = csr()
    request["spec"]["request"] = base64.b64encode(b"not a request").decode()
    assert kubelet_csr.review(request, HOSTS).startswith("the request is not a PEM certificate request")


def test_pending_and_approval():
    request = csr()
    assert kubelet_csr.is_pending(request)
    approved = kubelet_csr.approval(request, "ok")
    assert not kubelet_csr.is_pending(approved)
    assert approved["status"]["conditions"][-1]["type"] == "Approved"
    assert kubelet_csr.is_pending(request), "the request itself is not modified"

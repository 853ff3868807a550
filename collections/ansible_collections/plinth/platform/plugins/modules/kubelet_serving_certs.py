#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kubelet_serving_certs
short_description: Approve the kubelet serving-certificate requests of the inventory's hosts, after checking them
version_added: 0.1.0
description:
  - Kubelets that run with C(serverTLSBootstrap) ask the cluster CA for their serving certificate
    through CertificateSigningRequests of signer C(kubernetes.io/kubelet-serving). Kubernetes
    approves none of them; until one is approved, the kubelet serves no certificate that
    metrics-server (or an API server that verifies kubelets) accepts.
  - This module approves the pending requests that speak for a host of O(hosts) and ask only for
    that host's own name and inventory address, as a serving certificate. Every other pending
    request of that signer is left pending and reported under RV(refused) with the reason; the
    module never denies a request.
  - It approves what exists now, once. Renewals later in the cluster's life are approved by the
    C(kubelet_csr_approver) platform component.
author:
  - Plinth contributors (@plinth)
requirements:
  - cryptography, on the host the module runs on
extends_documentation_fragment:
  - plinth.platform.kube_auth
options:
  hosts:
    description:
      - Host name to C({address}) for every host of the inventory, as the platform spec holds them
        (C(plinth_spec.hosts)).
    type: dict
    required: true
  wait_timeout:
    description:
      - Seconds to wait until every host in O(wait_for) has a kubelet-serving request (pending or
        approved); C(0) does not wait.
    type: int
    default: 0
  wait_for:
    description: Hosts whose kubelets are expected to have asked by now (usually every registered node).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    description: Reads the requests and reports which it would approve, without approving any.
    support: full
  diff_mode:
    description: No diff is returned; RV(approved) lists what changes.
    support: none
  platform:
    description: Talks to the Kubernetes API from wherever it runs, usually the controller.
    platforms: all
    support: full
seealso:
  - name: Kubelet serving certificate bootstrap
    description: How kubelets request serving certificates.
    link: https://kubernetes.io/docs/reference/access-authn-authz/kubelet-tls-bootstrapping/
"""

EXAMPLES = r"""
- name: Approve the kubelet serving certificates of the inventory's hosts
  plinth.platform.kubelet_serving_certs:
    hosts: "{{ plinth_spec.hosts }}"
    wait_for: "{{ plinth_spec.hosts | list }}"
    wait_timeout: 60
    kubeconfig: "{{ playbook_dir }}/../build/production/admin.conf"
"""

RETURN = r"""
approved:
  description: Names of the requests approved (or that would be, in check mode), with their node.
  returned: always
  type: dict
  sample: {csr-8x2kq: worker-1}
refused:
  description: Pending kubelet-serving requests left pending, each with the reason.
  returned: always
  type: dict
  sample: {csr-4m9zt: "node 'intruder' is not a host of the inventory"}
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.plinth.platform.plugins.module_utils import kube_api, kubelet_csr

CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
WAIT_INTERVAL = 2


def argument_spec():
    return kube_api.argument_spec(
        hosts=dict(type="dict", required=True),
        wait_timeout=dict(type="int", default=0),
        wait_for=dict(type="list", elements="str", default=[]),
    )


def serving_requests(api):
    found = api.request("GET", CSR_PATH + "?fieldSelector=spec.signerName%3D" + kubelet_csr.SIGNER)["items"]
    return sorted(found, key=lambda csr: csr["metadata"]["name"])


def wait_for_requests(api, names, timeout):
    """The kubelet-serving requests, once every node in ``names`` has one or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        requests = serving_requests(api)
        missing = set(names) - set(kubelet_csr.node_of(csr) for csr in requests)
        if not missing or time.monotonic() >= deadline:
            return requests
        time.sleep(WAIT_INTERVAL)


def run(module, api):
    hosts = module.params["hosts"]
    approved, refused = {}, {}
    for csr in wait_for_requests(api, module.params["wait_for"], module.params["wait_timeout"]):
        if not kubelet_csr.is_pending(csr):
            continue
        name = csr["metadata"]["name"]
        reason = kubelet_csr.review(csr, hosts)
        if reason:
            refused[name] = reason
            continue
        node = kubelet_csr.node_of(csr)
        if not module.check_mode:
            body = kubelet_csr.approval(csr, "host %s of the inventory, its own name and address" % node)
            api.request("PUT", "%s/%s/approval" % (CSR_PATH, name), body)
        approved[name] = node
    for name, reason in sorted(refused.items()):
        module.warn("kubelet serving certificate request %s left pending: %s" % (name, reason))
    return dict(changed=bool(approved), approved=approved, refused=refused)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    if kubelet_csr.x509 is None:
        module.fail_json(msg=missing_required_lib("cryptography"))
    bad = sorted(h for h, v in module.params["hosts"].items() if not isinstance(v, dict))
    if bad:
        module.fail_json(msg="hosts: %s must each map to {address: ...}" % ", ".join(repr(h) for h in bad))
    if module.params["wait_timeout"] < 0:
        module.fail_json(msg="wait_timeout: got %r; must be 0 or more seconds" % module.params["wait_timeout"])
    kube_api.run_module(module, run)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kubeadm_certs
short_description: Report when the certificates kubeadm manages on a control-plane host expire
version_added: 0.1.0
description:
  - Runs C(kubeadm certs check-expiration -o json) on a control-plane host and returns every
    certificate and certificate authority kubeadm manages there, each with its expiry and the
    seconds it has left.
  - RV(due) names the certificates that expire within O(renew_within_days) and that kubeadm can
    renew (present and not externally managed); their names are the arguments of C(kubeadm certs renew).
  - Warns for each certificate or authority that expires within O(warn_within_days). A missing one
    is reported, not warned about (C(super-admin.conf) is only on the host that ran C(kubeadm init)).
  - It reads only, and never changes the host.
author:
  - Plinth contributors (@plinth)
options:
  renew_within_days:
    description: A certificate that expires within this many days is due for renewal.
    type: int
    default: 0
  warn_within_days:
    description: Warn about a certificate or authority that expires within this many days; C(0) never warns.
    type: int
    default: 0
  kubeadm:
    description: Path or name of the kubeadm binary (a name is looked up in E(PATH), then in C(/usr/local/bin)).
    type: str
    default: kubeadm
attributes:
  check_mode:
    description: Reads the same in check mode.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  platform:
    description: A control-plane host made by kubeadm.
    platforms: posix
    support: full
"""

EXAMPLES = r"""
- name: Read the certificates' expiry, warning under 30 days
  plinth.platform.kubeadm_certs:
    warn_within_days: 30
    renew_within_days: 90
  register: certs
"""

RETURN = r"""
certificates:
  description: Every certificate kubeadm manages on the host, by name.
  returned: always
  type: dict
  sample: {apiserver: {expires: "2027-12-03T16:40:00Z", seconds_left: 31535000, authority: ca,
           externally_managed: false, missing: false}}
authorities:
  description: Every certificate authority kubeadm manages on the host, by name, like RV(certificates).
  returned: always
  type: dict
  sample: {ca: {expires: "2036-12-01T16:40:00Z", seconds_left: 315360000, externally_managed: false, missing: false}}
expiring:
  description: The warnings given, one per certificate or authority that expires within O(warn_within_days).
  returned: always
  type: list
  elements: str
  sample: ["certificate apiserver expires on 2027-01-05T00:00:00Z, in 20 day(s): under the 30-day threshold; ..."]
due:
  description: Names of the present certificates that expire within O(renew_within_days) and kubeadm can renew, sorted.
  returned: always
  type: list
  elements: str
  sample: [admin.conf, apiserver]
"""

import json

from ansible.module_utils.basic import AnsibleModule

DAY = 86400


def parse(stdout):
    """kubeadm's CertificateExpirationInfo from its output (a line about reading the cluster may come first)."""
    start = stdout.find("{")
    if start < 0:
        raise ValueError("no JSON object in the output")
    info = json.loads(stdout[start:])
    return [dict((entry["name"], describe(entry)) for entry in info.get(key) or [])
            for key in ("certificates", "certificateAuthorities")]


def describe(entry):
    found = dict(expires=entry.get("expirationDate"), seconds_left=int(entry.get("residualTime") or 0),
                 externally_managed=bool(entry.get("externallyManaged")), missing=bool(entry.get("missing")))
    if entry.get("caName"):
        found["authority"] = entry["caName"]
    return found


def due(certificates, within_days):
    return sorted(name for name, cert in certificates.items()
                  if not (cert["externally_managed"] or cert["missing"]) and cert["seconds_left"] < within_days * DAY)


def warnings(kind, found, within_days):
    for name, cert in sorted(found.items()):
        if not cert["missing"] and cert["seconds_left"] < within_days * DAY:
            yield ("%s %s expires on %s, in %d day(s): under the %d-day threshold; renew it with "
                   "playbooks/renew_certificates.yml" % (kind, name, cert["expires"], cert["seconds_left"] // DAY,
                                                         within_days))


def main():
    module = AnsibleModule(argument_spec=dict(renew_within_days=dict(type="int", default=0),
                                              warn_within_days=dict(type="int", default=0),
                                              kubeadm=dict(type="str", default="kubeadm")),
                           supports_check_mode=True)
    for option in ("renew_within_days", "warn_within_days"):
        if module.params[option] < 0:
            module.fail_json(msg="%s: got %d; must be 0 or more days" % (option, module.params[option]))
    kubeadm = module.params["kubeadm"]
    if "/" not in kubeadm:
        # Also where the artifact mirror installs it, when the PATH of a become lacks it.
        kubeadm = module.get_bin_path(kubeadm, required=True, opt_dirs=["/usr/local/bin"])
    argv = [kubeadm, "certs", "check-expiration", "-o", "json"]
    rc, stdout, stderr = module.run_command(argv, environ_update=dict(LC_ALL="C"))
    if rc != 0:
        module.fail_json(msg="%s failed (exit %d): %s" % (" ".join(argv), rc, stderr.strip()), rc=rc)
    try:
        certificates, authorities = parse(stdout)
    except (ValueError, KeyError, TypeError) as exc:
        module.fail_json(msg="could not read the output of %s: %s" % (" ".join(argv), exc), stdout=stdout)
    expiring = [message for kind, found in (("certificate", certificates), ("certificate authority", authorities))
                for message in warnings(kind, found, module.params["warn_within_days"])]
    for message in expiring:
        module.warn(message)
    module.exit_json(changed=False, certificates=certificates, authorities=authorities,
                     due=due(certificates, module.params["renew_within_days"]), expiring=expiring)


if __name__ == "__main__":
    main()

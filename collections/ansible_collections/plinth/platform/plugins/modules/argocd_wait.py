#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, annotations, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: argocd_wait
short_description: Wait until Argo CD Applications are Synced and Healthy, or say why they are not
version_added: 0.1.0
description:
  - Polls the named Argo CD Applications until every one reports sync status C(Synced) and, unless
    O(healthy=false), health C(Healthy). With O(revision), an Application counts only once it has
    synced that revision of the GitOps repository.
  - On timeout the task fails with one paragraph per Application that is not ready. It names the
    sync and health status, the revision it is at, its conditions, the last sync operation's
    message and each resource that is out of sync or not healthy.
  - It fails early when Argo CD has given up on an Application, that is, when the last sync failed
    after the retries its sync policy allows.
  - Reads only. It never changes the cluster and never reports C(changed).
author:
  - Plinth contributors (@plinth)
extends_documentation_fragment:
  - plinth.platform.kube_auth
options:
  applications:
    description: Names of the Applications to wait for.
    type: list
    elements: str
    required: true
  namespace:
    description: Namespace of the Applications (Argo CD's own).
    type: str
    default: argocd
  revision:
    description: Commit of the GitOps repository the Applications must have synced; any when omitted.
    type: str
  healthy:
    description: Require health C(Healthy) as well as C(Synced).
    type: bool
    default: true
  timeout:
    description: Seconds to wait before failing.
    type: int
    default: 600
  interval:
    description: Seconds between two reads.
    type: int
    default: 5
attributes:
  check_mode:
    description: Reads the Applications once and reports their state, without waiting.
    support: full
  diff_mode:
    description: Nothing changes, so there is no diff.
    support: none
  platform:
    description: Talks to the Kubernetes API from wherever it runs, usually the controller.
    platforms: all
    support: full
"""

EXAMPLES = r"""
- name: Wait for each sync wave in turn
  plinth.platform.argocd_wait:
    applications: "{{ item.applications }}"
    namespace: argocd
    timeout: 900
  loop: "{{ plinth_spec | plinth.platform.sync_waves }}"
  loop_control:
    label: "wave {{ item.wave }}: {{ item.applications | join(', ') }}"
"""

RETURN = r"""
applications:
  description: Per Application, its sync and health status, synced revisions and last operation phase.
  returned: always
  type: dict
  sample: {kong: {sync: Synced, health: Healthy, revisions: [3.4.1, 9f1c2ab], operation: Succeeded}}
elapsed:
  description: Seconds waited.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.plinth.platform.plugins.module_utils import argocd_status, kube_api

APPLICATIONS = "/apis/argoproj.io/v1alpha1/namespaces/%s/applications"


def argument_spec():
    return kube_api.argument_spec(
        applications=dict(type="list", elements="str", required=True),
        namespace=dict(type="str", default="argocd"),
        revision=dict(type="str"),
        healthy=dict(type="bool", default=True),
        timeout=dict(type="int", default=600),
        interval=dict(type="int", default=5),
    )


def read(api, namespace, names):
    """name -> Application (None when missing), from one list call."""
    items = api.request("GET", APPLICATIONS % namespace)["items"]
    by_name = dict((app["metadata"]["name"], app) for app in items)
    return dict((name, by_name.get(name)) for name in names)


def run(module, api):
    params = module.params
    names = sorted(set(params["applications"]))
    start = time.monotonic()
    while True:
        apps = read(api, params["namespace"], names)
        waiting = [n for n in names if not argocd_status.is_ready(apps[n], params["revision"], params["healthy"])]
        result = dict(changed=False, elapsed=round(time.monotonic() - start, 1),
                      applications=dict((n, argocd_status.summary(apps[n])) for n in names))
        if not waiting or module.check_mode:
            return result, None
        given_up = [(n, argocd_status.gave_up(apps[n])) for n in waiting]
        given_up = [(n, reason) for n, reason in given_up if reason]
        if given_up:
            return result, "Argo CD gave up on %s:\n%s" % (
                ", ".join(n for n, _r in given_up),
                "\n".join("  - " + argocd_status.explain(n, apps[n], params["revision"]) for n in waiting))
        if time.monotonic() - start >= params["timeout"]:
            return result, "timed out after %ds waiting for %s:\n%s" % (
                params["timeout"], ", ".join(waiting),
                "\n".join("  - " + argocd_status.explain(n, apps[n], params["revision"]) for n in waiting))
        time.sleep(params["interval"])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    for key, least in (("timeout", 0), ("interval", 1)):
        if module.params[key] < least:
            module.fail_json(msg="%s: got %r; must be at least %d" % (key, module.params[key], least))
    kube_api.run_module(module, run)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Controller-side pieces the two ``vault_*`` actions share: finding the servers and the keys file.

The keys file holds what ``sys/init`` returned (unseal or recovery keys, and the
initial root token until it is revoked), as YAML encrypted with ansible-vault
under the play's vault password, mode 0600, written by atomic rename.  It lives
on the controller only, never in the GitOps repository.
"""

from __future__ import absolute_import, annotations, division, print_function

import os
import tempfile

import yaml

from ansible.errors import AnsibleActionFail
from ansible.parsing.vault import is_encrypted

from ansible_collections.plinth.platform.plugins.module_utils import kube_api, vault_api
from ansible_collections.plinth.platform.plugins.module_utils.plain import plain

__metaclass__ = type

KEYS_KIND = "plinth-vault-keys"
SERVER_ARGS = frozenset(("addresses", "ca_path", "pods", "kubeconfig", "context", "timeout"))


def servers(args):
    """One ``vault_api.Vault`` per server: ``addresses`` when given, else every server pod via the API server."""
    if args.get("addresses"):
        return [vault_api.Vault(vault_api.Direct(url, ca_path=args.get("ca_path"))) for url in args["addresses"]]
    pods = args.get("pods") or {}
    missing = [key for key in ("namespace", "labels", "port") if not pods.get(key)]
    if missing:
        raise AnsibleActionFail("pods: needs %s (or give addresses)" % ", ".join(missing))
    kubeconfig = args.get("kubeconfig") or os.environ.get("K8S_AUTH_KUBECONFIG")
    if kube_api.KUBERNETES_IMPORT_ERROR:
        raise AnsibleActionFail("the Python package kubernetes is needed to reach Vault through the API server")
    if not kubeconfig or not os.path.exists(kubeconfig):
        raise AnsibleActionFail("kubeconfig: got %r; no such file (the control-plane stage writes it; or set "
                                "K8S_AUTH_KUBECONFIG, or give addresses)" % (kubeconfig,))
    api = kube_api.Api(kubeconfig, args.get("context"))
    selector = ",".join("%s=%s" % item for item in sorted(pods["labels"].items()))
    expected = pods.get("count")

    def running():
        listed = api.request("GET", "/api/v1/namespaces/%s/pods?labelSelector=%s" % (pods["namespace"], selector))
        names = sorted(p["metadata"]["name"] for p in listed["items"] if _started(p))
        return names if names and (not expected or len(names) >= expected) else None

    names = vault_api.wait_for(running, args.get("timeout") or 600,
                               what="Vault pods %s in namespace %s" % (selector, pods["namespace"]))
    return [vault_api.Vault(vault_api.PodProxy(api, pods["namespace"], name, pods["port"],
                                               pods.get("scheme") or "http")) for name in names]


def _started(pod):
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return pod.get("status", {}).get("phase") == "Running" and any(s.get("started") for s in statuses)


def read_keys(loader, path):
    """The keys file's content, or None when there is none yet."""
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        data = handle.read()
    if is_encrypted(data):
        if not loader._vault.secrets:
            raise AnsibleActionFail("keys_file %s is encrypted with ansible-vault: give the vault password "
                                    "(--vault-password-file, --ask-vault-pass or ANSIBLE_VAULT_PASSWORD_FILE)" % path)
        data = loader._vault.decrypt(data)
    content = yaml.safe_load(data)
    if not isinstance(content, dict) or content.get("kind") != KEYS_KIND:
        raise AnsibleActionFail("keys_file %s: not a Plinth Vault keys file (kind %s expected)" % (path, KEYS_KIND))
    return content


def can_encrypt(loader):
    return bool(loader._vault.secrets)


def check_writable(loader, path, encrypt=True):
    """Fail now, before Vault hands out keys that exist nowhere else, if they could not be kept."""
    write_keys(loader, path + ".check", {"check": True}, encrypt=encrypt)
    os.unlink(path + ".check")


def write_keys(loader, path, content, encrypt=True):
    """Write ``content`` atomically, mode 0600, encrypted unless the keys are PGP-encrypted already."""
    text = "# Vault keys written by Plinth's vault stage. Keep a copy offline; never commit it.\n"
    text += yaml.safe_dump(plain(dict(content, kind=KEYS_KIND)), default_flow_style=False, sort_keys=True)
    data = loader._vault.encrypt(text) if encrypt else text.encode("utf-8")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    handle, staged = tempfile.mkstemp(prefix=".vault-keys.", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(staged, 0o600)
        os.replace(staged, path)
    except BaseException:
        if os.path.exists(staged):
            os.unlink(staged)
        raise

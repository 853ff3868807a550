# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The files kube-apiserver reads: encryption at rest and the audit policy.

``control_plane_files`` keys each document by its path on the control-plane
hosts; the ClusterConfiguration (kubeadm.documents) mounts their directories.
Encryption keys are made on the hosts at run time and passed in by the role;
an error shows nothing of them.  Problems with the options are named
``<prefix><option>`` (see kubeadm.options).
"""

from __future__ import absolute_import, annotations, division, print_function

import base64
import binascii
import re

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import credentials
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import options as kubeadm_options

__metaclass__ = type

ENCRYPTION_API = "apiserver.config.k8s.io/v1"
AUDIT_API = "audit.k8s.io/v1"


def encryption_config(keys, options=None, prefix=""):
    """EncryptionConfiguration: the first key encrypts, every key decrypts, identity reads what predates it.

    ``keys`` is a list of ``{name, secret}`` with ``secret`` the base64 of a
    random key (32 bytes for secretbox): keep the old key listed after the new
    one until every Secret has been rewritten.
    """
    errors = s.Errors()
    opts = kubeadm_options.checked(options, errors, prefix)
    _check_keys(keys, opts["encryption_provider"], prefix + "encryption_keys", errors)
    errors.raise_if_any()
    return _encryption_config(keys, opts)


def encryption_keys_in(text):
    """The ``{name, secret}`` keys of an EncryptionConfiguration's first keyed provider, or [].

    Lets a role keep the keys a cluster already encrypts with when the
    inventory names none.
    """
    doc = gitops.yaml.safe_load(text) if text else None
    resources = doc.get("resources") if isinstance(doc, dict) else None
    for resource in resources or []:
        for provider in resource.get("providers") or []:
            for body in provider.values():
                if isinstance(body, dict) and body.get("keys"):
                    return [{"name": k["name"], "secret": k["secret"]} for k in body["keys"]]
    return []


def _encryption_config(keys, opts):
    provider = {opts["encryption_provider"]: {"keys": [{"name": k["name"], "secret": k["secret"]} for k in keys]}}
    return {
        "apiVersion": ENCRYPTION_API,
        "kind": "EncryptionConfiguration",
        "resources": [{
            "resources": list(opts["encryption_resources"]),
            "providers": [provider, {"identity": {}}],
        }],
    }


def _check_keys(keys, provider, path, errors):
    if not isinstance(keys, list) or not keys:
        errors.add(path, credentials.redacted(keys) if keys else s.REQUIRED,
                   "must list at least one {name, secret} key; the first one encrypts")
        return
    sizes = kubeadm_options.ENCRYPTION_KEY_SIZES.get(provider, ())
    seen = set()
    for index, key in enumerate(keys):
        item = "%s[%d]" % (path, index)
        if not isinstance(key, dict) or set(key) != {"name", "secret"}:
            errors.add(item, sorted(key) if isinstance(key, dict) else type(key).__name__,
                       "must be a mapping with exactly the keys name and secret")
            continue
        name = key["name"]
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][-A-Za-z0-9_.]*$", name):
            errors.add(item + ".name", name, "must be a name of letters, digits, '-', '_' and '.'")
        elif name in seen:
            errors.add(item + ".name", name, "key names must be unique")
        seen.add(name)
        size = _decoded_size(key["secret"])
        if sizes and size not in sizes:
            errors.add(item + ".secret", credentials.redacted(key["secret"]),
                       "must be the base64 of a %s-byte random key for %s"
                       % (" or ".join(str(n) for n in sizes), provider))


def _decoded_size(secret):
    if not isinstance(secret, str):
        return None
    try:
        return len(base64.b64decode(secret.encode("ascii"), validate=True))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def audit_policy():
    """Who did what, without the bodies that carry credentials.

    Rules match in order: noise first (probes, watches of Service endpoints,
    lease heartbeats, node status reads, events), then metadata only for
    anything whose body holds secrets or is a stream, then the request body of
    every change, and metadata for the remaining reads.
    """
    return {
        "apiVersion": AUDIT_API,
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version"]},
            {"level": "None", "users": ["system:kube-proxy"], "verbs": ["watch"],
             "resources": [{"group": "", "resources": ["endpoints", "services", "services/status"]},
                           {"group": "discovery.k8s.io", "resources": ["endpointslices"]}]},
            {"level": "None", "verbs": ["get", "update"],
             "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
            {"level": "None", "userGroups": ["system:nodes"], "verbs": ["get"],
             "resources": [{"group": "", "resources": ["nodes", "nodes/status"]}]},
            {"level": "None",
             "resources": [{"group": "", "resources": ["events"]}, {"group": "events.k8s.io", "resources": ["events"]}]},
            {"level": "Metadata",
             "resources": [{"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
                           {"group": "authentication.k8s.io", "resources": ["tokenreviews"]}]},
            {"level": "Metadata",
             "resources": [{"group": "", "resources": ["pods/exec", "pods/attach", "pods/portforward",
                                                       "pods/proxy", "services/proxy", "nodes/proxy"]}]},
            {"level": "Request", "verbs": ["create", "update", "patch", "delete", "deletecollection"]},
            {"level": "Metadata"},
        ],
    }


def control_plane_files(options=None, encryption_keys=None, prefix=""):
    """Path -> document of each file kube-apiserver reads, for every control-plane host.

    Every control-plane host needs them before ``kubeadm init`` or ``join``:
    the ClusterConfiguration mounts them on all of them.
    """
    errors = s.Errors()
    opts = kubeadm_options.checked(options, errors, prefix)
    if opts["secrets_encryption"]:
        _check_keys(encryption_keys, opts["encryption_provider"], prefix + "encryption_keys", errors)
    errors.raise_if_any()
    files = {}
    if opts["secrets_encryption"]:
        files[opts["encryption_config_file"]] = _encryption_config(encryption_keys, opts)
    if opts["audit"]:
        files[opts["audit_policy_file"]] = audit_policy()
    return files

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kubeadm configuration filters; the logic lives in module_utils/kubeadm/.

The roles hand their settings over without their prefix (``cert_sans``, not
``control_plane_cert_sans``).  Which role's variables those are is known here,
at the boundary with Ansible: problems are named after the variable the user
set.
"""

from __future__ import absolute_import, annotations, division, print_function

from ansible.errors import AnsibleFilterError

from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import apiserver_files, credentials
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import text as kubeadm_text
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import upgrade
from ansible_collections.plinth.platform.plugins.module_utils.plain import plain
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError

__metaclass__ = type

# The prefix of the variables each role takes its kubeadm options from.
CONTROL_PLANE_PREFIX = "control_plane_"
NODE_JOIN_PREFIX = "node_join_"


def _need_spec(spec, name):
    if not isinstance(spec, dict) or "control_plane" not in spec or "node_pools" not in spec:
        raise AnsibleFilterError("%s expects the output of plinth.platform.platform_spec, got %s"
                                 % (name, type(spec).__name__))
    return plain(spec)


def _call(what, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except SpecError as exc:
        count = len(exc.errors)
        raise AnsibleFilterError("cannot render %s (%d problem%s):\n  - %s"
                                 % (what, count, "" if count == 1 else "s", "\n  - ".join(exc.errors)))


def kubeadm_init_config(spec, host, options=None, certificate_key=None):
    spec = _need_spec(spec, "kubeadm_init_config")
    return _call("the kubeadm init configuration of %s" % host, kubeadm_text.init_config, spec, str(host),
                 plain(options or {}), certificate_key=plain(certificate_key), prefix=CONTROL_PLANE_PREFIX)


def kubeadm_join_config(spec, host, options=None, token=None, ca_cert_hashes=None, certificate_key=None,
                        control_plane=False):
    spec = _need_spec(spec, "kubeadm_join_config")
    if not isinstance(control_plane, bool):
        raise AnsibleFilterError("kubeadm_join_config: control_plane must be true or false, got %r" % (control_plane,))
    return _call("the kubeadm join configuration of %s" % host, kubeadm_text.join_config, spec, str(host),
                 plain(options or {}), token=plain(token), ca_cert_hashes=plain(ca_cert_hashes),
                 certificate_key=plain(certificate_key), control_plane=control_plane,
                 prefix=CONTROL_PLANE_PREFIX if control_plane else NODE_JOIN_PREFIX)


def kubeadm_control_plane_files(options, encryption_keys=None):
    return _call("the API server's files", kubeadm_text.control_plane_file_texts, plain(options or {}),
                 plain(encryption_keys), prefix=CONTROL_PLANE_PREFIX)


def kubeadm_join_credentials(join_command, upload_certs_output=None):
    try:
        return credentials.join_credentials(join_command, upload_certs_output)
    except ValueError as exc:
        raise AnsibleFilterError("kubeadm_join_credentials: %s" % exc)


def kubeadm_encryption_keys(text):
    try:
        return apiserver_files.encryption_keys_in(text)
    except (ValueError, AttributeError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("kubeadm_encryption_keys: not an EncryptionConfiguration (%s)" % type(exc).__name__)


def kubeadm_upgrade_plan(nodes, target, apiserver_pods=None, variable="plinth_kubernetes_version"):
    try:
        return upgrade.plan(target, upgrade.running_versions(plain(nodes), plain(apiserver_pods or [])),
                            variable=variable)
    except (ValueError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("cannot plan the upgrade: %s" % exc)


def kubeadm_image_tag(image):
    return upgrade.image_tag(image)


class FilterModule(object):
    def filters(self):
        return {
            "kubeadm_init_config": kubeadm_init_config,
            "kubeadm_join_config": kubeadm_join_config,
            "kubeadm_control_plane_files": kubeadm_control_plane_files,
            "kubeadm_encryption_keys": kubeadm_encryption_keys,
            "kubeadm_join_credentials": kubeadm_join_credentials,
            "kubeadm_upgrade_plan": kubeadm_upgrade_plan,
            "kubeadm_image_tag": kubeadm_image_tag,
        }

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The kubeadm filters: YAML text out, module_utils errors as AnsibleFilterError."""

from __future__ import absolute_import, annotations, division, print_function

import base64

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.plinth.platform.plugins.filter import kubeadm as filters
from ansible_collections.plinth.platform.plugins.filter import platform

__metaclass__ = type

TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "0123456789abcdef" * 4
CERT_KEY = "fedcba9876543210" * 4


def _spec(inventory):
    return platform.platform_spec(*inventory)


def test_filters_are_exported():
    assert sorted(filters.FilterModule().filters()) == [
        "kubeadm_control_plane_files", "kubeadm_encryption_keys", "kubeadm_image_tag", "kubeadm_init_config",
        "kubeadm_join_config", "kubeadm_join_credentials", "kubeadm_upgrade_plan"]


def test_init_config_is_yaml_text(production):
    text = filters.kubeadm_init_config(_spec(production), "cp-1", {"ignore_preflight_errors": ["SystemVerification"]},
                                       CERT_KEY)
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    assert docs[0]["certificateKey"] == CERT_KEY
    assert docs[0]["nodeRegistration"]["ignorePreflightErrors"] == ["SystemVerification"]


def test_join_config_is_yaml_text(production):
    spec = _spec(production)
    gateway = yaml.safe_load(filters.kubeadm_join_config(spec, "gw-3", {}, TOKEN, CA_HASH))
    assert gateway["nodeRegistration"]["taints"][0]["key"] == "node.kong.gateway"
    control_plane = yaml.safe_load(filters.kubeadm_join_config(spec, "cp-2", None, TOKEN, [CA_HASH], CERT_KEY, True))
    assert control_plane["controlPlane"]["certificateKey"] == CERT_KEY


def test_control_plane_files_are_yaml_texts():
    key = {"name": "key-1", "secret": base64.b64encode(b"k" * 32).decode("ascii")}
    files = filters.kubeadm_control_plane_files({}, [key])
    assert sorted(files) == ["/etc/kubernetes/audit/policy.yaml", "/etc/kubernetes/encryption/config.yaml"]
    assert yaml.safe_load(files["/etc/kubernetes/encryption/config.yaml"])["kind"] == "EncryptionConfiguration"


def test_problems_become_filter_errors(production):
    spec = _spec(production)
    with pytest.raises(AnsibleFilterError) as exc:
        filters.kubeadm_init_config(spec, "cp-1", {"cert_sans": ["bad host!"], "audit": "yes"})
    assert str(exc.value) == (
        "cannot render the kubeadm init configuration of cp-1 (2 problems):\n"
        "  - control_plane_cert_sans[0]: got 'bad host!'; must be an IP address or a DNS name\n"
        "  - control_plane_audit: got 'yes'; must be true or false")
    with pytest.raises(AnsibleFilterError, match="token: got '<redacted, 6 characters>'") as exc:
        filters.kubeadm_join_config(spec, "worker-1", {}, "secret", CA_HASH)
    assert "secret'" not in str(exc.value)
    with pytest.raises(AnsibleFilterError, match="control_plane must be true or false"):
        filters.kubeadm_join_config(spec, "cp-2", {}, TOKEN, CA_HASH, CERT_KEY, "yes")
    with pytest.raises(AnsibleFilterError, match="expects the output of plinth.platform.platform_spec"):
        filters.kubeadm_init_config({"cluster_name": "x"}, "cp-1")
    with pytest.raises(AnsibleFilterError, match="control_plane_encryption_keys: got nothing"):
        filters.kubeadm_control_plane_files({})


def test_problems_are_named_after_the_role_variables(production):
    """The roles hand their options over without their prefix; the filters name each role's variables."""
    spec = _spec(production)
    with pytest.raises(AnsibleFilterError, match="  - node_join_cri_socket: got 'tcp://x'"):
        filters.kubeadm_join_config(spec, "worker-1", {"cri_socket": "tcp://x"}, TOKEN, CA_HASH)
    with pytest.raises(AnsibleFilterError, match="  - control_plane_cri_socket: got 'tcp://x'"):
        filters.kubeadm_join_config(spec, "cp-2", {"cri_socket": "tcp://x"}, TOKEN, CA_HASH, CERT_KEY, True)
    with pytest.raises(AnsibleFilterError, match=r"  - control_plane: got \['cert_sans'\]; must be a mapping"):
        filters.kubeadm_init_config(spec, "cp-1", ["cert_sans"])
    with pytest.raises(AnsibleFilterError, match="  - control_plane_audit_log_maxsize: got 0"):
        filters.kubeadm_control_plane_files({"audit_log_maxsize": 0, "secrets_encryption": False})


def test_encryption_keys_filter_refuses_other_text():
    with pytest.raises(AnsibleFilterError) as exc:
        filters.kubeadm_encryption_keys("resources: [1]\n")
    assert "kubeadm_encryption_keys: not an EncryptionConfiguration" in str(exc.value)


def test_join_credentials_filter_turns_errors_into_filter_errors():
    with pytest.raises(AnsibleFilterError) as exc:
        filters.kubeadm_join_credentials("kubeadm join 10.0.0.10:6443")
    assert str(exc.value).startswith("kubeadm_join_credentials: the join command kubeadm printed has no --token")

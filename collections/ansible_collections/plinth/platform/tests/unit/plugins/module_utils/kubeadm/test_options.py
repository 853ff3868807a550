# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The role-level kubeadm options: defaults, rules, every problem at once under the caller's names."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import documents
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import options as kubeadm_options

from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.kubeadm.helpers import (
    CA_HASH, CERT_KEY, CONTROL_PLANE, TOKEN, init, problems, spec_of)

__metaclass__ = type


def test_default_options_are_complete():
    defaults = kubeadm_options.default_options()
    assert sorted(defaults) == sorted(kubeadm_options.OPTIONS)
    assert defaults["kubelet_fail_cgroup_v1"] is True
    # Signed serving certificates by default: metrics-server verifies kubelets.
    assert defaults["kubelet_server_tls_bootstrap"] is True
    assert defaults["ignore_preflight_errors"] == []
    assert defaults["image_repository"] == "registry.k8s.io"
    assert init(options=defaults) == init(options={}) == init(options=None)


def test_every_option_problem_is_reported_at_once_under_the_role_variable():
    options = {
        "cert_sans": ["api.example.com", "not a host!"],
        "kube_proxy_mode": "userspace",
        "ignore_preflight_errors": ["System Verification"],
        "audit_log_maxsize": 0,
        "encryption_resources": ["configmaps"],
        "cri_socket": "/run/containerd/containerd.sock",
        "component_bind_address": "localhost",
        "etcd_listen_metrics_urls": "0.0.0.0:2381",
        "image_repository": "https://registry.example.com",
        "colour": "blue",
    }
    errors = problems(documents.init_documents, spec_of(), "cp-1", options, prefix=CONTROL_PLANE)
    assert len(errors) == 10, errors
    starts = sorted(e.split(":", 1)[0] for e in errors)
    assert starts == sorted([
        "control_plane_cert_sans[1]", "control_plane_kube_proxy_mode", "control_plane_ignore_preflight_errors[0]",
        "control_plane_audit_log_maxsize", "control_plane_encryption_resources", "control_plane_cri_socket",
        "control_plane_component_bind_address", "control_plane_etcd_listen_metrics_urls",
        "control_plane_image_repository", "control_plane_colour"])
    assert "control_plane_cert_sans[1]: got 'not a host!'; must be an IP address or a DNS name" in errors
    assert "control_plane_kube_proxy_mode: got 'userspace'; must be one of 'iptables', 'ipvs', 'nftables'" in errors


@pytest.mark.parametrize("option,value,fine", [
    ("component_bind_address", "0.0.0.0", True), ("component_bind_address", "::1", True),
    ("component_bind_address", "192.0.2.11", False), ("component_bind_address", "localhost", False),
    ("etcd_listen_metrics_urls", "http://0.0.0.0:2381", True),
    ("etcd_listen_metrics_urls", "http://127.0.0.1:2381,https://[::]:2382", True),
    ("etcd_listen_metrics_urls", "http://192.0.2.11:2381", False),
    ("etcd_listen_metrics_urls", "http://0.0.0.0", False), ("etcd_listen_metrics_urls", "0.0.0.0:2381", False),
])
def test_listen_addresses_must_exist_on_every_control_plane_host(option, value, fine):
    spec = spec_of()
    if fine:
        assert documents.init_documents(spec, "cp-1", {option: value})
    else:
        errors = problems(documents.init_documents, spec, "cp-1", {option: value}, prefix=CONTROL_PLANE)
        assert len(errors) == 1 and errors[0].startswith("control_plane_%s: got %r" % (option, value))
        assert errors[0].endswith("every control-plane host shares it, so it must be 0.0.0.0, ::, 127.0.0.1 or ::1")


@pytest.mark.parametrize("options,error", [
    ({"kubelet_eviction_hard": {"disk.available": "1Gi"}},
     "control_plane_kubelet_eviction_hard.disk.available: got 'disk.available'; must be one of the kubelet's "
     "eviction signals: memory.available, nodefs.available, nodefs.inodesFree, imagefs.available, "
     "imagefs.inodesFree, containerfs.available, containerfs.inodesFree, pid.available"),
    ({"kubelet_eviction_hard": {"nodefs.available": "10 %"}},
     "control_plane_kubelet_eviction_hard.nodefs.available: got '10 %'; must be a quantity like 500Mi or 2Gi, "
     "or a percentage like 10%"),
    ({"kubelet_image_gc_high_threshold_percent": 101},
     "control_plane_kubelet_image_gc_high_threshold_percent: got 101; must be at most 100"),
    ({"kubelet_image_gc_high_threshold_percent": 70},
     "control_plane_kubelet_image_gc_low_threshold_percent: got 80; must be below "
     "control_plane_kubelet_image_gc_high_threshold_percent (70)"),
    ({"kubelet_image_gc_low_threshold_percent": 90},
     "control_plane_kubelet_image_gc_low_threshold_percent: got 90; must be below "
     "control_plane_kubelet_image_gc_high_threshold_percent (85, the kubelet's default)"),
])
def test_kubelet_disk_thresholds_are_checked(options, error):
    assert problems(documents.init_documents, spec_of(), "cp-1", options, prefix=CONTROL_PLANE) == [error]


def test_kubelet_disk_thresholds_accept_what_the_kubelet_does():
    options = {"kubelet_eviction_hard": {"nodefs.available": "2Gi", "nodefs.inodesFree": "5%",
                                         "memory.available": "0.5%"},
               "kubelet_image_gc_high_threshold_percent": 100, "kubelet_image_gc_low_threshold_percent": 90}
    kubelet = init(options=options)["KubeletConfiguration"]
    assert kubelet["evictionHard"]["memory.available"] == "0.5%"
    assert (kubelet["imageGCHighThresholdPercent"], kubelet["imageGCLowThresholdPercent"]) == (100, 90)


def test_file_options_need_directories_of_their_own():
    options = {"encryption_config_file": "/etc/kubernetes/encryption.yaml",
               "audit_policy_file": "/var/log/kubernetes/audit/policy.yaml",
               "audit_log_file": "relative/audit.log"}
    errors = problems(documents.init_documents, spec_of(), "cp-1", options, prefix=CONTROL_PLANE)
    assert len(errors) == 2, errors
    assert errors[0].startswith("control_plane_encryption_config_file: got '/etc/kubernetes/encryption.yaml'; "
                                "must sit in a directory of its own")
    assert errors[1] == ("control_plane_audit_log_file: got 'relative/audit.log'; must be an absolute, "
                         "normalized path")

    options = {"audit_policy_file": "/etc/kubernetes/audit/policy.yaml",
               "audit_log_file": "/etc/kubernetes/audit/audit.log"}
    errors = problems(documents.init_documents, spec_of(), "cp-1", options, prefix=CONTROL_PLANE)
    assert errors == ["control_plane_audit_log_file: got '/etc/kubernetes/audit/audit.log'; shares the directory "
                      "/etc/kubernetes/audit with control_plane_audit_policy_file; each file is mounted into "
                      "kube-apiserver through a directory of its own"]
    # Only the files in use need their own directory.
    assert init(options=dict(options, audit=False))


def test_problems_are_named_with_the_callers_prefix():
    """Which role's variables the options are is the caller's knowledge (the filters')."""
    spec = spec_of()
    errors = problems(documents.join_documents, spec, "worker-1", {"cri_socket": "tcp://x"}, TOKEN, CA_HASH)
    assert errors[0].startswith("cri_socket: got 'tcp://x'")
    errors = problems(documents.join_documents, spec, "worker-1", {"cri_socket": "tcp://x"}, TOKEN, CA_HASH,
                      prefix="node_join_")
    assert errors[0].startswith("node_join_cri_socket: got 'tcp://x'")
    errors = problems(documents.join_documents, spec, "cp-2", {"cri_socket": "tcp://x"}, TOKEN, CA_HASH, CERT_KEY,
                      control_plane=True, prefix=CONTROL_PLANE)
    assert errors[0].startswith("control_plane_cri_socket: got 'tcp://x'")
    assert problems(documents.init_documents, spec, "cp-1", ["cert_sans"], prefix=CONTROL_PLANE) == [
        "control_plane: got ['cert_sans']; must be a mapping of option name to value"]
    assert problems(documents.init_documents, spec, "cp-1", ["cert_sans"]) == [
        "options: got ['cert_sans']; must be a mapping of option name to value"]
    errors = problems(documents.init_documents, spec, "cp-1", {"encryption_resources": ["configmaps"]})
    assert errors == ["encryption_resources: got ['configmaps']; must include secrets (or a wildcard that covers "
                      "them, '*.' or '*.*') while secrets_encryption is true"]

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The role-level settings of the kubeadm configuration: ``OPTIONS``, their defaults and rules.

They are checked with the inventory schema and every problem is reported at
once in one ``SpecError``.  Problems are named ``<prefix><option>``: the
caller passes the prefix its own variables carry, so a role's user reads the
name of the variable they set (the filters name the roles' variables).
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress
import posixpath
import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s

__metaclass__ = type

# Directories kubeadm already mounts into the control-plane pods, or that hold
# credentials the API server has no business reading.
RESERVED_DIRECTORIES = frozenset((
    "/", "/etc", "/var", "/var/log", "/etc/kubernetes", "/etc/kubernetes/pki", "/etc/kubernetes/manifests",
    "/etc/ssl/certs", "/etc/pki", "/etc/ca-certificates", "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
))

# The kubelet's hard eviction thresholds when it is given none. Given some, it sets the
# others to zero (no eviction on them), so Plinth adds these for the signals left out.
EVICTION_HARD_DEFAULTS = {"memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%",
                          "imagefs.available": "15%"}
EVICTION_SIGNALS = ("memory.available", "nodefs.available", "nodefs.inodesFree", "imagefs.available",
                    "imagefs.inodesFree", "containerfs.available", "containerfs.inodesFree", "pid.available")

# Key sizes (bytes) each local encryption provider accepts.
ENCRYPTION_KEY_SIZES = {"secretbox": (32,), "aescbc": (16, 24, 32)}

RESOURCE = re.compile(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?))?$")
PREFLIGHT_CHECK = re.compile(r"^([A-Za-z][A-Za-z0-9-]*|all)$")
PERCENT = re.compile(r"^(100|[0-9]{1,2}(\.[0-9]+)?)%$")
IMAGE_REPOSITORY = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]([-a-z0-9._]*[a-z0-9])?)*$")


def _absolute_path(value):
    if not value.startswith("/") or posixpath.normpath(value) != value:
        return "must be an absolute, normalized path"
    return None


def _config_file(value):
    rule = _absolute_path(value)
    if rule:
        return rule
    if posixpath.dirname(value) in RESERVED_DIRECTORIES:
        return ("must sit in a directory of its own: kube-apiserver mounts the whole directory, and %s is "
                "shared with kubeadm or other files" % posixpath.dirname(value))
    return None


def _unix_socket(value):
    if not re.match(r"^unix:///[^\s]+$", value):
        return "must be a unix:/// socket URL like unix:///run/containerd/containerd.sock"
    return None


def _image_repository(value):
    if not IMAGE_REPOSITORY.match(value):
        return "must be a registry host with an optional path, like registry.k8s.io or mirror.example.com:5000/k8s"
    return None


# The ClusterConfiguration is shared by every control-plane host, so a listen
# address in it must exist on all of them: a wildcard or the loopback.
SHARED_ADDRESS_RULE = "every control-plane host shares it, so it must be 0.0.0.0, ::, 127.0.0.1 or ::1"


def _shared_address(value):
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return "must be an IP address; " + SHARED_ADDRESS_RULE
    if not (address.is_unspecified or address.is_loopback):
        return SHARED_ADDRESS_RULE
    return None


def _metrics_urls(value):
    for url in value.split(","):
        match = re.match(r"^https?://(\[[0-9a-fA-F:.]+\]|[0-9.]+):[0-9]+$", url)
        if not match or _shared_address(match.group(1).strip("[]")):
            return ("must be comma-separated http(s)://address:port URLs like http://0.0.0.0:2381; "
                    + SHARED_ADDRESS_RULE)
    return None


def _preflight_check(value):
    if not PREFLIGHT_CHECK.match(value):
        return "must be the name of a kubeadm preflight check (like SystemVerification) or 'all'"
    return None


def _eviction_signal(value):
    if value not in EVICTION_SIGNALS:
        return "must be one of the kubelet's eviction signals: %s" % ", ".join(EVICTION_SIGNALS)
    return None


def _eviction_threshold(value):
    if isinstance(value, str) and (s.quantity(value) is None or PERCENT.match(value)):
        return None
    return "must be a quantity like 500Mi or 2Gi, or a percentage like 10%"


def _resource(value):
    if not RESOURCE.match(value):
        return "must be a resource, optionally with its group: secrets, configmaps, widgets.example.com, *.apps"
    return None


OPTIONS = {
    "cert_sans": s.List(s.Str(checks=[s.ip_or_host]), default=[],
                        doc="extra API server certificate names; the endpoint and every control-plane host "
                            "name and address are always included"),
    "ignore_preflight_errors": s.List(s.Str(checks=[_preflight_check]), default=[],
                                      doc="kubeadm preflight checks to ignore, e.g. SystemVerification on hosts "
                                          "whose kernel runs cgroup v1"),
    "cri_socket": s.Str("unix:///run/containerd/containerd.sock", checks=[_unix_socket]),
    "image_repository": s.Str("registry.k8s.io", checks=[_image_repository],
                              doc="where the control-plane images come from (an air-gapped mirror)"),
    "dns_domain": s.Str("cluster.local", checks=[s.dns_subdomain]),
    "kube_proxy_mode": s.Str("iptables", choices=("iptables", "ipvs", "nftables"),
                             doc="used only while kube-proxy runs (Cilium without its replacement, or no Cilium)"),
    "kube_proxy_tune_conntrack": s.Bool(True, doc="kube-proxy sizes the kernel's connection tracking table and TCP "
                                                  "timeouts; false leaves the kernel's values (hosts whose /proc/sys "
                                                  "is read-only, such as containers used as test hosts)"),
    "kubelet_fail_cgroup_v1": s.Bool(True, doc="the kubelet's own default; false lets it run on cgroup v1 hosts"),
    "kubelet_server_tls_bootstrap": s.Bool(True, doc="kubelet serving certificates from the cluster CA, which "
                                                     "metrics-server verifies; their requests are approved by the "
                                                     "kubelet_serving_certs role and the kubelet_csr_approver "
                                                     "component"),
    "kubelet_eviction_hard": s.Map(keys=s.Str(checks=[_eviction_signal]), values=s.Str(checks=[_eviction_threshold]),
                                   default={},
                                   doc="the kubelet's hard eviction thresholds by signal (nodefs.available: 2Gi); "
                                       "a signal left out keeps the kubelet's default; empty: the kubelet's "
                                       "defaults"),
    "kubelet_image_gc_high_threshold_percent": s.Int(None, nullable=True, minimum=1, maximum=100,
                                                     doc="disk use at which the kubelet deletes unused images "
                                                         "(100 never does); unset: the kubelet's 85"),
    "kubelet_image_gc_low_threshold_percent": s.Int(None, nullable=True, minimum=0, maximum=99,
                                                    doc="disk use the kubelet's image deletion brings the disk "
                                                        "down to; below the high threshold; unset: the "
                                                        "kubelet's 80"),
    "etcd_listen_metrics_urls": s.Str(None, nullable=True, checks=[_metrics_urls],
                                      doc="etcd's plain-HTTP metrics listener; unset: http://0.0.0.0:2381 "
                                          "(http://[::]:2381 on IPv6) while monitoring scrapes the control "
                                          "plane, else kubeadm's http://127.0.0.1:2381"),
    "component_bind_address": s.Str(None, nullable=True, checks=[_shared_address],
                                    doc="bind address of kube-controller-manager and kube-scheduler; "
                                        "unset: 0.0.0.0 (:: on IPv6) while monitoring scrapes the control "
                                        "plane, else kubeadm's 127.0.0.1"),
    "secrets_encryption": s.Bool(True, doc="encrypt Secrets at rest in etcd"),
    "encryption_provider": s.Str("secretbox", choices=tuple(sorted(ENCRYPTION_KEY_SIZES))),
    "encryption_resources": s.List(s.Str(checks=[_resource]), default=["secrets"]),
    "encryption_config_file": s.Str("/etc/kubernetes/encryption/config.yaml", checks=[_config_file]),
    "audit": s.Bool(True, doc="API server audit log"),
    "audit_policy_file": s.Str("/etc/kubernetes/audit/policy.yaml", checks=[_config_file]),
    "audit_log_file": s.Str("/var/log/kubernetes/audit/audit.log", checks=[_config_file]),
    "audit_log_maxage": s.Int(30, minimum=0, doc="days to keep rotated audit logs"),
    "audit_log_maxbackup": s.Int(10, minimum=0, doc="rotated audit logs to keep"),
    "audit_log_maxsize": s.Int(100, minimum=1, doc="megabytes before the audit log rotates"),
}


# Options whose empty value means "kubeadm's default", like null.
UNSET_WHEN_EMPTY = ("etcd_listen_metrics_urls", "component_bind_address", "kubelet_image_gc_high_threshold_percent",
                    "kubelet_image_gc_low_threshold_percent")


def default_options():
    """Every option with its default: what a role's defaults/main.yml mirrors."""
    return dict((key, field.defaults()) for key, field in OPTIONS.items())


def checked(options, errors, prefix=""):
    """``options`` checked and completed; problems go to ``errors``, named ``<prefix><option>``.

    The whole mapping is named after the prefix without its trailing ``_``
    (``options`` without a prefix).
    """
    if options is None:
        options = {}
    if not isinstance(options, dict):
        errors.add(prefix.rstrip("_") or "options", options, "must be a mapping of option name to value")
        return default_options()
    fields = dict((prefix + key, field) for key, field in OPTIONS.items())
    named = dict((prefix + str(key), None if key in UNSET_WHEN_EMPTY and value == "" else value)
                 for key, value in options.items())
    found = s.normalize(named, s.Dict(fields), "", errors)
    opts = dict((key[len(prefix):], value) for key, value in found.items())
    _check_files(opts, prefix, errors)
    if opts["secrets_encryption"] and not _covers_secrets(opts["encryption_resources"]):
        errors.add(prefix + "encryption_resources", opts["encryption_resources"],
                   "must include secrets (or a wildcard that covers them, '*.' or '*.*') while "
                   "%ssecrets_encryption is true" % prefix)
    _check_image_gc(opts, prefix, errors)
    return opts


def _check_image_gc(opts, prefix, errors):
    """The kubelet refuses to start unless the low threshold is below the high one."""
    high = opts["kubelet_image_gc_high_threshold_percent"]
    low = opts["kubelet_image_gc_low_threshold_percent"]
    if any(isinstance(value, bool) or not isinstance(value, (int, type(None))) for value in (high, low)):
        return
    effective_high = 85 if high is None else high
    effective_low = 80 if low is None else low
    if effective_low >= effective_high:
        errors.add(prefix + "kubelet_image_gc_low_threshold_percent", effective_low,
                   "must be below %skubelet_image_gc_high_threshold_percent (%s%s)"
                   % (prefix, effective_high, ", the kubelet's default" if high is None else ""))


def _covers_secrets(resources):
    return any(r in ("secrets", "*.", "*.*") for r in resources or [])


def _check_files(opts, prefix, errors):
    """Each file the API server reads or writes gets a directory (and a mount) of its own."""
    owners = {}
    for key in _wanted_files(opts):
        path = opts[key]
        if not isinstance(path, str) or _config_file(path):
            continue
        folder = posixpath.dirname(path)
        if folder in owners:
            errors.add(prefix + key, path, "shares the directory %s with %s%s; each file is mounted into "
                       "kube-apiserver through a directory of its own" % (folder, prefix, owners[folder]))
        owners.setdefault(folder, key)


def _wanted_files(opts):
    keys = []
    if opts.get("secrets_encryption"):
        keys.append("encryption_config_file")
    if opts.get("audit"):
        keys.extend(("audit_policy_file", "audit_log_file"))
    return keys

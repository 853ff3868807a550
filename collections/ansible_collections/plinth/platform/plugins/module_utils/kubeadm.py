# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Platform spec -> kubeadm configuration (kubeadm.k8s.io/v1beta4).

* ``init_documents``: what ``kubeadm init --config`` reads on the first
  control-plane host (InitConfiguration, ClusterConfiguration,
  KubeletConfiguration and, while kube-proxy runs, KubeProxyConfiguration).
* ``join_documents``: the JoinConfiguration of any other host, control plane
  or pool member.  Every node registers with its pools' taints and labels, so
  no pod lands on a gateway or storage node before its taint exists.
* ``control_plane_files``: the encryption-at-rest configuration and the audit
  policy the API server reads, keyed by their path on the control-plane host.

Nothing here creates secret material.  Bootstrap tokens, CA pins, the
certificate key of ``kubeadm init --upload-certs`` and encryption keys are
made on the hosts at run time and passed in by the roles (under ``no_log``);
they are checked for form, never echoed in an error.

``options`` carries the role-level settings (``OPTIONS`` below, with their
defaults).  They are checked with the inventory schema and every problem is
reported at once in one ``SpecError``, named after the role variable
(``control_plane_cert_sans[0]``).
"""

from __future__ import absolute_import, annotations, division, print_function

import base64
import binascii
import ipaddress
import posixpath
import re

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils import schema as s

__metaclass__ = type

KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
KUBE_PROXY_API = "kubeproxy.config.k8s.io/v1alpha1"
ENCRYPTION_API = "apiserver.config.k8s.io/v1"
AUDIT_API = "audit.k8s.io/v1"

# kubeadm.k8s.io/v1beta4 (and the kubelet's failCgroupV1) arrived with kubeadm 1.31.
MINIMUM_VERSION = (1, 31)

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
KUBE_PROXY_PHASE = "addon/kube-proxy"

# Labels a kubelet may put on its own Node (the NodeRestriction admission plugin's
# rule; the kubelet refuses to start with any other kubernetes.io / k8s.io label).
KUBELET_LABELS = frozenset((
    "kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type", "node.kubernetes.io/windows-build",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
))
KUBELET_LABEL_DOMAINS = ("kubelet.kubernetes.io", "node.kubernetes.io")
RESTRICTED_LABEL_DOMAINS = ("kubernetes.io", "k8s.io")

# Directories kubeadm already mounts into the control-plane pods, or that hold
# credentials the API server has no business reading.
RESERVED_DIRECTORIES = frozenset((
    "/", "/etc", "/var", "/var/log", "/etc/kubernetes", "/etc/kubernetes/pki", "/etc/kubernetes/manifests",
    "/etc/ssl/certs", "/etc/pki", "/etc/ca-certificates", "/usr/share/ca-certificates",
    "/usr/local/share/ca-certificates",
))

# Key sizes (bytes) each local encryption provider accepts.
ENCRYPTION_KEY_SIZES = {"secretbox": (32,), "aescbc": (16, 24, 32)}

BOOTSTRAP_TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
CA_CERT_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
CERTIFICATE_KEY = re.compile(r"^[0-9a-f]{64}$")
RESOURCE = re.compile(r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)(\.(\*|[a-z0-9]([-a-z0-9.]*[a-z0-9])?))?$")
PREFLIGHT_CHECK = re.compile(r"^([A-Za-z][A-Za-z0-9-]*|all)$")
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
    "etcd_listen_metrics_urls": s.Str(None, nullable=True, checks=[_metrics_urls],
                                      doc="etcd's plain-HTTP metrics listener (kubeadm: http://127.0.0.1:2381)"),
    "component_bind_address": s.Str(None, nullable=True, checks=[_shared_address],
                                    doc="bind address of kube-controller-manager and kube-scheduler "
                                        "(kubeadm: 127.0.0.1); 0.0.0.0 lets Prometheus scrape them"),
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
UNSET_WHEN_EMPTY = ("etcd_listen_metrics_urls", "component_bind_address")


def default_options():
    """Every option with its default: what a role's defaults/main.yml mirrors."""
    return dict((key, field.defaults()) for key, field in OPTIONS.items())


def _options(options, prefix, errors):
    """``options`` checked and completed; problems are named ``<prefix><option>``."""
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
    return opts


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


# --- spec helpers ------------------------------------------------------------

def _check_version(spec, errors):
    match = re.match(r"^v?([0-9]+)\.([0-9]+)\.", spec.get("kubernetes_version") or "")
    if match and (int(match.group(1)), int(match.group(2))) < MINIMUM_VERSION:
        errors.add("plinth_kubernetes_version", spec["kubernetes_version"],
                   "kubeadm configuration %s needs Kubernetes %d.%d or newer" % ((KUBEADM_API,) + MINIMUM_VERSION))


def _kubernetes_version(spec):
    return "v" + spec["kubernetes_version"].lstrip("v")


def _host_port(host, port):
    try:
        if ipaddress.ip_address(host).version == 6:
            return "[%s]:%d" % (host, port)
    except ValueError:
        pass
    return "%s:%d" % (host, port)


def _ip(text):
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def kube_proxy_replaced(spec):
    """True when Cilium serves Services itself, so kubeadm must not install kube-proxy."""
    cilium = spec["components"].get("cilium") or {}
    return bool(cilium.get("enabled") and cilium.get("kube_proxy_replacement"))


def host_pools(spec, host):
    return [name for name, pool in sorted(spec["node_pools"].items()) if host in pool["hosts"]]


def kubelet_may_set(key):
    """Whether a kubelet may register its Node with label ``key`` (NodeRestriction)."""
    if key in KUBELET_LABELS:
        return True
    domain = key.rpartition("/")[0]
    if any(domain == d or domain.endswith("." + d) for d in KUBELET_LABEL_DOMAINS):
        return True
    return not any(domain == d or domain.endswith("." + d) for d in RESTRICTED_LABEL_DOMAINS)


def node_registration(spec, host):
    """Taints and labels ``host`` registers with, from its pools (and kubeadm's control-plane taint).

    ``deferred_labels`` are pool labels a kubelet may not set on itself
    (``node-role.kubernetes.io/*`` and other kubernetes.io / k8s.io keys):
    node_topology applies them through the API right after the join.  The
    taints need no such care, so placement is safe from the first moment.
    """
    taints = {}
    labels = {}
    for name in host_pools(spec, host):
        pool = spec["node_pools"][name]
        for taint in pool["taints"]:
            taints[taint["key"]] = taint
        labels.update(pool["labels"])
    if host in spec["control_plane"]["hosts"]:
        taints.setdefault(CONTROL_PLANE_TAINT["key"], CONTROL_PLANE_TAINT)
    return {
        "taints": [_taint(taints[key]) for key in sorted(taints)],
        "labels": dict((k, v) for k, v in labels.items() if kubelet_may_set(k)),
        "deferred_labels": dict((k, v) for k, v in labels.items() if not kubelet_may_set(k)),
    }


def _taint(taint):
    out = {"key": taint["key"], "effect": taint["effect"]}
    if taint.get("value"):
        out["value"] = taint["value"]
    return out


def _check_host(spec, host, control_plane, errors):
    cp = spec["control_plane"]
    if host not in spec["hosts"]:
        errors.add("host", host, "is not a host of the platform (known: %s)" % ", ".join(sorted(spec["hosts"])))
        return
    if s.dns_subdomain(host):
        errors.add("host", host, "is the Node name and " + s.dns_subdomain(host))
    if control_plane and host not in cp["hosts"]:
        errors.add("host", host, "is not in the control-plane group %s" % cp["group"])
    if not control_plane and host in cp["hosts"]:
        errors.add("host", host, "is a control-plane host (group %s): join it as one" % cp["group"])


def _redacted(value):
    """What an error may show of a secret: nothing of its content."""
    if value is None:
        return s.REQUIRED
    if isinstance(value, str):
        return "<redacted, %d characters>" % len(value)
    return "<redacted %s>" % type(value).__name__


def _check_secret(name, value, pattern, rule, errors):
    if not isinstance(value, str) or not pattern.match(value):
        errors.add(name, _redacted(value), rule)


# --- documents -----------------------------------------------------------------

def _args(pairs):
    """kubeadm v1beta4 arguments: a list of name/value pairs, in a stable order."""
    return [{"name": name, "value": str(value)} for name, value in sorted(pairs.items())]


def _node_registration(spec, host, opts):
    found = node_registration(spec, host)
    kubelet = {}
    address = _ip(spec["hosts"][host]["address"])
    if address:
        # The kubelet would otherwise pick the address of the default route, which
        # need not be the one the control plane and the NetworkPolicies know.
        kubelet["node-ip"] = address
    if found["labels"]:
        kubelet["node-labels"] = ",".join("%s=%s" % item for item in sorted(found["labels"].items()))
    registration = {
        "name": host,
        "criSocket": opts["cri_socket"],
        "taints": found["taints"],
    }
    if kubelet:
        registration["kubeletExtraArgs"] = _args(kubelet)
    if opts["ignore_preflight_errors"]:
        registration["ignorePreflightErrors"] = sorted(set(opts["ignore_preflight_errors"]))
    return registration


def _local_endpoint(spec, host):
    endpoint = {"bindPort": spec["control_plane_endpoint"]["port"]}
    address = _ip(spec["hosts"][host]["address"])
    if address:
        endpoint["advertiseAddress"] = address
    return endpoint


def cert_sans(spec, opts):
    names = {spec["control_plane_endpoint"]["host"]}
    for host in spec["control_plane"]["hosts"]:
        names.add(host)
        names.add(spec["hosts"][host]["address"])
    names.update(opts["cert_sans"])
    return sorted(names)


def _api_server(spec, opts):
    args = {}
    volumes = []
    if opts["secrets_encryption"]:
        args["encryption-provider-config"] = opts["encryption_config_file"]
        # Key rotation then needs no API server restart.
        args["encryption-provider-config-automatic-reload"] = "true"
        volumes.append(_volume("encryption-config", opts["encryption_config_file"], read_only=True))
    if opts["audit"]:
        args.update({
            "audit-policy-file": opts["audit_policy_file"],
            "audit-log-path": opts["audit_log_file"],
            "audit-log-maxage": opts["audit_log_maxage"],
            "audit-log-maxbackup": opts["audit_log_maxbackup"],
            "audit-log-maxsize": opts["audit_log_maxsize"],
        })
        volumes.append(_volume("audit-policy", opts["audit_policy_file"], read_only=True))
        volumes.append(_volume("audit-log", opts["audit_log_file"], read_only=False))
    server = {"certSANs": cert_sans(spec, opts)}
    if args:
        server["extraArgs"] = _args(args)
    if volumes:
        server["extraVolumes"] = volumes
    return server


def _volume(name, path, read_only):
    """The file's directory, not the file: a file mount pins the inode, so a
    replaced file (a rotated key, an updated policy) would never be seen."""
    folder = posixpath.dirname(path)
    return {
        "name": name,
        "hostPath": folder,
        "mountPath": folder,
        "readOnly": read_only,
        # Config directories must exist (the role writes them before kubeadm runs);
        # the log directory is the API server's to fill.
        "pathType": "Directory" if read_only else "DirectoryOrCreate",
    }


def cluster_configuration(spec, opts):
    endpoint = spec["control_plane_endpoint"]
    local_etcd = {"dataDir": "/var/lib/etcd"}
    if opts["etcd_listen_metrics_urls"]:
        local_etcd["extraArgs"] = _args({"listen-metrics-urls": opts["etcd_listen_metrics_urls"]})
    config = {
        "apiVersion": KUBEADM_API,
        "kind": "ClusterConfiguration",
        "clusterName": spec["cluster_name"],
        "kubernetesVersion": _kubernetes_version(spec),
        "controlPlaneEndpoint": _host_port(endpoint["host"], endpoint["port"]),
        "imageRepository": opts["image_repository"],
        "networking": {
            "podSubnet": spec["pod_cidr"],
            "serviceSubnet": spec["service_cidr"],
            "dnsDomain": opts["dns_domain"],
        },
        "apiServer": _api_server(spec, opts),
        "etcd": {"local": local_etcd},
    }
    if opts["component_bind_address"] is not None:
        component = {"extraArgs": _args({"bind-address": opts["component_bind_address"]})}
        config["controllerManager"] = component
        config["scheduler"] = dict(component)
    if kube_proxy_replaced(spec):
        # Kept in the kubeadm-config ConfigMap, so `kubeadm upgrade` does not bring kube-proxy back.
        config["proxy"] = {"disabled": True}
    return config


def kubelet_configuration(opts):
    return {
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        # containerd runs with SystemdCgroup = true: both must use the same driver.
        "cgroupDriver": "systemd",
        "failCgroupV1": opts["kubelet_fail_cgroup_v1"],
        "rotateCertificates": True,
        # Serving certificates signed by the cluster CA are requested as CSRs that
        # nothing in kubeadm approves: the kubelet_serving_certs role (bootstrap) and
        # the kubelet_csr_approver component (renewals) do.  Off, kubelets serve a
        # self-signed certificate that metrics-server refuses.
        "serverTLSBootstrap": opts["kubelet_server_tls_bootstrap"],
    }


def kube_proxy_configuration(spec, opts):
    config = {
        "apiVersion": KUBE_PROXY_API,
        "kind": "KubeProxyConfiguration",
        "mode": opts["kube_proxy_mode"],
        "clusterCIDR": spec["pod_cidr"],
    }
    if not opts["kube_proxy_tune_conntrack"]:
        # Zero means "leave the kernel's value" to kube-proxy.
        config["conntrack"] = {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"}
    return config


def init_documents(spec, host, options=None, certificate_key=None, prefix="control_plane_"):
    """The documents of ``kubeadm init --config`` on control-plane host ``host``.

    ``certificate_key`` (64 hex digits, made by ``kubeadm certs certificate-key``)
    lets ``kubeadm init --upload-certs`` use a key the role already knows, so
    the other control-plane hosts can join with it.
    """
    errors = s.Errors()
    opts = _options(options, prefix, errors)
    _check_version(spec, errors)
    _check_host(spec, host, True, errors)
    if certificate_key is not None:
        _check_secret("certificate_key", certificate_key, CERTIFICATE_KEY, "must be 64 hexadecimal digits", errors)
    errors.raise_if_any()

    init = {
        "apiVersion": KUBEADM_API,
        "kind": "InitConfiguration",
        "localAPIEndpoint": _local_endpoint(spec, host),
        "nodeRegistration": _node_registration(spec, host, opts),
    }
    if certificate_key is not None:
        init["certificateKey"] = certificate_key
    docs = [init, cluster_configuration(spec, opts), kubelet_configuration(opts)]
    if kube_proxy_replaced(spec):
        init["skipPhases"] = [KUBE_PROXY_PHASE]
    else:
        docs.append(kube_proxy_configuration(spec, opts))
    return docs


def join_documents(spec, host, options=None, token=None, ca_cert_hashes=None, certificate_key=None,
                   control_plane=False, prefix=None):
    """The JoinConfiguration of ``host``: a further control-plane host or a pool member.

    ``token`` is a bootstrap token (``kubeadm token create``), ``ca_cert_hashes``
    the ``sha256:`` pin(s) of the cluster CA, ``certificate_key`` the key the
    first control-plane host uploaded its certificates with (control plane only).
    """
    if prefix is None:
        prefix = "control_plane_" if control_plane else "node_join_"
    errors = s.Errors()
    opts = _options(options, prefix, errors)
    _check_version(spec, errors)
    _check_host(spec, host, control_plane, errors)
    _check_secret("token", token, BOOTSTRAP_TOKEN, "must be a bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}", errors)
    hashes = [ca_cert_hashes] if isinstance(ca_cert_hashes, str) else ca_cert_hashes
    if not isinstance(hashes, list) or not hashes:
        errors.add("ca_cert_hashes", _redacted(ca_cert_hashes),
                   "must be one or more sha256:<64 hex digits> pins of the cluster CA")
    else:
        for index, pin in enumerate(hashes):
            if not isinstance(pin, str) or not CA_CERT_HASH.match(pin):
                errors.add("ca_cert_hashes[%d]" % index, _redacted(pin), "must be sha256: and 64 hexadecimal digits")
    if control_plane:
        _check_secret("certificate_key", certificate_key, CERTIFICATE_KEY, "must be 64 hexadecimal digits", errors)
    elif certificate_key is not None:
        errors.add("certificate_key", _redacted(certificate_key), "is for control-plane joins only")
    errors.raise_if_any()

    endpoint = spec["control_plane_endpoint"]
    join = {
        "apiVersion": KUBEADM_API,
        "kind": "JoinConfiguration",
        "nodeRegistration": _node_registration(spec, host, opts),
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": _host_port(endpoint["host"], endpoint["port"]),
                "token": token,
                "caCertHashes": sorted(set(hashes)),
            },
        },
    }
    if control_plane:
        join["controlPlane"] = {"localAPIEndpoint": _local_endpoint(spec, host), "certificateKey": certificate_key}
    return [join]


# --- join credentials from kubeadm's own output ----------------------------------------

# Credential -> the flag of `kubeadm join` that carries it.
JOIN_COMMAND_FLAGS = (("token", "--token"), ("ca_cert_hash", "--discovery-token-ca-cert-hash"))


def join_credentials(join_command, upload_certs_output=None):
    """``{token, ca_cert_hash[, certificate_key]}`` read from what kubeadm printed.

    ``join_command`` is the output of ``kubeadm token create --print-join-command``;
    ``upload_certs_output`` that of ``kubeadm init phase upload-certs --upload-certs``,
    whose last line of 64 hex digits is the key (control-plane joins only). Raises
    ValueError naming what is missing, never showing the output: it holds secrets.
    """
    text = join_command if isinstance(join_command, str) else ""
    found = {}
    for key, flag in JOIN_COMMAND_FLAGS:
        match = re.search(r"%s\s+(\S+)" % re.escape(flag), text)
        if not match:
            raise ValueError("the join command kubeadm printed has no %s (got %s)" % (flag, _redacted(join_command)))
        found[key] = match.group(1)
    if upload_certs_output is not None:
        keys = [line.strip() for line in str(upload_certs_output).splitlines()
                if CERTIFICATE_KEY.match(line.strip())]
        if not keys:
            raise ValueError("kubeadm's upload-certs output has no certificate key (got %s)"
                             % _redacted(upload_certs_output))
        found["certificate_key"] = keys[-1]
    return found


# --- files the API server reads ------------------------------------------------

def encryption_config(keys, options=None, prefix="control_plane_"):
    """EncryptionConfiguration: the first key encrypts, every key decrypts, identity reads what predates it.

    ``keys`` is a list of ``{name, secret}`` with ``secret`` the base64 of a
    random key (32 bytes for secretbox): keep the old key listed after the new
    one until every Secret has been rewritten.
    """
    errors = s.Errors()
    opts = _options(options, prefix, errors)
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
        errors.add(path, _redacted(keys) if keys else s.REQUIRED,
                   "must list at least one {name, secret} key; the first one encrypts")
        return
    sizes = ENCRYPTION_KEY_SIZES[provider] if provider in ENCRYPTION_KEY_SIZES else ()
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
            errors.add(item + ".secret", _redacted(key["secret"]),
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


def control_plane_files(options=None, encryption_keys=None, prefix="control_plane_"):
    """Path -> document of each file kube-apiserver reads, for every control-plane host.

    Every control-plane host needs them before ``kubeadm init`` or ``join``:
    the ClusterConfiguration mounts them on all of them.
    """
    errors = s.Errors()
    opts = _options(options, prefix, errors)
    if opts["secrets_encryption"]:
        _check_keys(encryption_keys, opts["encryption_provider"], prefix + "encryption_keys", errors)
    errors.raise_if_any()
    files = {}
    if opts["secrets_encryption"]:
        files[opts["encryption_config_file"]] = _encryption_config(encryption_keys, opts)
    if opts["audit"]:
        files[opts["audit_policy_file"]] = audit_policy()
    return files


# --- text ------------------------------------------------------------------------

HEADER = "# %s, generated by Plinth from the '%s' inventory.\n"


def to_yaml(docs, title, spec=None):
    """Deterministic YAML text of ``docs``: sorted keys, one ``---`` per document.

    The header comment sits inside the first document: kubeadm splits its
    configuration file at ``---`` and refuses a leading chunk with no kind.
    """
    header = HEADER % (title, spec["environment"]) if spec else "# %s, generated by Plinth.\n" % title
    return "---\n" + header + gitops.dump(docs)


def init_config(spec, host, options=None, certificate_key=None, prefix="control_plane_"):
    docs = init_documents(spec, host, options, certificate_key=certificate_key, prefix=prefix)
    return to_yaml(docs, "kubeadm init configuration of %s" % host, spec)


def join_config(spec, host, options=None, token=None, ca_cert_hashes=None, certificate_key=None,
                control_plane=False, prefix=None):
    docs = join_documents(spec, host, options, token=token, ca_cert_hashes=ca_cert_hashes,
                          certificate_key=certificate_key, control_plane=control_plane, prefix=prefix)
    return to_yaml(docs, "kubeadm join configuration of %s" % host, spec)


def control_plane_file_texts(options=None, encryption_keys=None, prefix="control_plane_"):
    """Path -> YAML text of each file kube-apiserver reads (see ``control_plane_files``)."""
    return dict((path, to_yaml([doc], doc["kind"]))
                for path, doc in sorted(control_plane_files(options, encryption_keys, prefix).items()))

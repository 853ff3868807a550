# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Platform spec -> the documents kubeadm reads (kubeadm.k8s.io/v1beta4).

* ``init_documents``: what ``kubeadm init --config`` reads on the first
  control-plane host (InitConfiguration, ClusterConfiguration,
  KubeletConfiguration and, while kube-proxy runs, KubeProxyConfiguration).
* ``join_documents``: the JoinConfiguration of any other host, control plane
  or pool member.  Every node registers with the taints and labels placement
  gives it, so no pod lands on a gateway or storage node before its taint exists.
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress
import posixpath
import re

from ansible_collections.plinth.platform.plugins.module_utils import placement
from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import credentials
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import options as kubeadm_options

__metaclass__ = type

KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
KUBE_PROXY_API = "kubeproxy.config.k8s.io/v1alpha1"

# kubeadm.k8s.io/v1beta4 (and the kubelet's failCgroupV1) arrived with kubeadm 1.31.
MINIMUM_VERSION = (1, 31)

KUBE_PROXY_PHASE = "addon/kube-proxy"

# kubeadm's etcd metrics port and kube-proxy's metrics port.
ETCD_METRICS_PORT = 2381
KUBE_PROXY_METRICS_PORT = 10249

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


def kubelet_may_set(key):
    """Whether a kubelet may register its Node with label ``key`` (NodeRestriction)."""
    if key in KUBELET_LABELS:
        return True
    domain = key.rpartition("/")[0]
    if any(domain == d or domain.endswith("." + d) for d in KUBELET_LABEL_DOMAINS):
        return True
    return not any(domain == d or domain.endswith("." + d) for d in RESTRICTED_LABEL_DOMAINS)


def node_registration(spec, host):
    """Taints and labels ``host`` registers with: all of placement's, but labels a kubelet may not set.

    ``deferred_labels`` are pool labels a kubelet may not set on itself
    (``node-role.kubernetes.io/*`` and other kubernetes.io / k8s.io keys):
    node_topology applies them through the API right after the join.  The
    taints need no such care, so placement is safe from the first moment.
    """
    labels = placement.host_labels(spec, host)
    return {
        "taints": placement.host_taints(spec, host),
        "labels": dict((k, v) for k, v in labels.items() if kubelet_may_set(k)),
        "deferred_labels": dict((k, v) for k, v in labels.items() if not kubelet_may_set(k)),
    }


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


def control_plane_scraped(spec):
    """True when Prometheus scrapes the control plane: monitoring and its control_plane_metrics are on."""
    monitoring = spec["components"].get("monitoring") or {}
    return bool(monitoring.get("enabled") and monitoring.get("control_plane_metrics"))


def metrics_listen_address(spec, hosts):
    """The wildcard address the metrics of ``hosts`` listen on: ``::`` when one of them is IPv6.

    The ClusterConfiguration and the kube-proxy ConfigMap are shared (a joining
    host reads them from the cluster), so they cannot name one host's address;
    per-node kubeadm patches could, but they are files on every host that each
    ``kubeadm upgrade`` must be handed again, and a host that missed them would
    fall back silently.  A wildcard is safe enough for what listens there:
    kube-controller-manager and kube-scheduler serve HTTPS and check every
    request with the API server (authentication and authorization), and the
    plain-HTTP listeners of etcd (2381) and kube-proxy (10249) serve metrics,
    health and kube-proxy's own settings, never keys or cluster data.  Hosts
    with an interface beyond the cluster network keep these ports closed there
    with their firewall.  On Linux ``::`` takes IPv4 too.
    """
    for host in hosts:
        address = _ip(spec["hosts"][host]["address"])
        if address and ipaddress.ip_address(address).version == 6:
            return "::"
    return "0.0.0.0"


def _control_plane_metrics(spec, opts):
    """``(etcd metrics URLs, component bind address)``: the options, else what scraping needs.

    Options set by the operator win; unset, kubeadm's loopback defaults stay
    unless the control plane is scraped.
    """
    urls, bind = opts["etcd_listen_metrics_urls"], opts["component_bind_address"]
    if control_plane_scraped(spec):
        wildcard = metrics_listen_address(spec, spec["control_plane"]["hosts"])
        if urls is None:
            urls = "http://" + _host_port(wildcard, ETCD_METRICS_PORT)
        if bind is None:
            bind = wildcard
    return urls, bind


def cluster_configuration(spec, opts):
    endpoint = spec["control_plane_endpoint"]
    metrics_urls, bind_address = _control_plane_metrics(spec, opts)
    local_etcd = {"dataDir": "/var/lib/etcd"}
    if metrics_urls:
        local_etcd["extraArgs"] = _args({"listen-metrics-urls": metrics_urls})
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
    if bind_address is not None:
        component = {"extraArgs": _args({"bind-address": bind_address})}
        config["controllerManager"] = component
        config["scheduler"] = dict(component)
    if kube_proxy_replaced(spec):
        # Kept in the kubeadm-config ConfigMap, so `kubeadm upgrade` does not bring kube-proxy back.
        config["proxy"] = {"disabled": True}
    return config


def kubelet_configuration(opts):
    config = {
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
    if opts["kubelet_eviction_hard"]:
        config["evictionHard"] = dict(kubeadm_options.EVICTION_HARD_DEFAULTS, **opts["kubelet_eviction_hard"])
    for key, option in (("imageGCHighThresholdPercent", "kubelet_image_gc_high_threshold_percent"),
                        ("imageGCLowThresholdPercent", "kubelet_image_gc_low_threshold_percent")):
        if opts[option] is not None:
            config[key] = opts[option]
    return config


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
    if control_plane_scraped(spec):
        # kube-proxy's own default is 127.0.0.1:10249, out of Prometheus' reach.
        config["metricsBindAddress"] = _host_port(metrics_listen_address(spec, sorted(spec["hosts"])),
                                                  KUBE_PROXY_METRICS_PORT)
    return config


def init_documents(spec, host, options=None, certificate_key=None, prefix=""):
    """The documents of ``kubeadm init --config`` on control-plane host ``host``.

    ``certificate_key`` (64 hex digits, made by ``kubeadm certs certificate-key``)
    lets ``kubeadm init --upload-certs`` use a key the role already knows, so
    the other control-plane hosts can join with it.  Problems with ``options``
    are named ``<prefix><option>`` (see kubeadm.options).
    """
    errors = s.Errors()
    opts = kubeadm_options.checked(options, errors, prefix)
    _check_version(spec, errors)
    _check_host(spec, host, True, errors)
    if certificate_key is not None:
        credentials.check_certificate_key(certificate_key, errors)
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
                   control_plane=False, prefix=""):
    """The JoinConfiguration of ``host``: a further control-plane host or a pool member.

    The credentials are checked by ``credentials.checked_join_credentials``;
    problems with ``options`` are named ``<prefix><option>`` (see kubeadm.options).
    """
    errors = s.Errors()
    opts = kubeadm_options.checked(options, errors, prefix)
    _check_version(spec, errors)
    _check_host(spec, host, control_plane, errors)
    hashes = credentials.checked_join_credentials(token, ca_cert_hashes, certificate_key, control_plane, errors)
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

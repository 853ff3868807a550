# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kubeadm configuration: golden files per host kind, and the rules behind them."""

from __future__ import absolute_import, annotations, division, print_function

import base64
import copy
import os

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils import kubeadm
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.conftest import (
    HERE, digest_in_fresh_process, load_inventory, rewrite_golden_files, sha256_of)

__metaclass__ = type

GOLDEN = os.path.join(HERE, "golden", "kubeadm")
UPDATE = os.environ.get("PLINTH_UPDATE_GOLDEN") == "1"

# Stand-ins of the right form: the roles make the real ones on the hosts at run time.
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "0123456789abcdef" * 4
CERT_KEY = "fedcba9876543210" * 4
KEY = {"name": "key-1", "secret": base64.b64encode(b"k" * 32).decode("ascii")}


def spec_of(env="production", edit=None):
    variables, groups, hostvars = copy.deepcopy(load_inventory(env))
    if edit is not None:
        edit(variables, groups, hostvars)
    return build_spec(variables, groups, hostvars)


def by_kind(docs):
    kinds = [d["kind"] for d in docs]
    assert len(set(kinds)) == len(kinds), kinds
    return dict((d["kind"], d) for d in docs)


def init(env="production", host=None, options=None, edit=None, **kw):
    spec = spec_of(env, edit)
    host = host or spec["control_plane"]["hosts"][0]
    return by_kind(kubeadm.init_documents(spec, host, options, **kw))


def join(host, env="production", options=None, control_plane=False, edit=None):
    spec = spec_of(env, edit)
    docs = kubeadm.join_documents(spec, host, options, token=TOKEN, ca_cert_hashes=CA_HASH,
                                  certificate_key=CERT_KEY if control_plane else None,
                                  control_plane=control_plane)
    assert [d["kind"] for d in docs] == ["JoinConfiguration"]
    return docs[0]


def args(component):
    return dict((a["name"], a["value"]) for a in component.get("extraArgs", []))


def problems(function, *a, **kw):
    with pytest.raises(SpecError) as exc:
        function(*a, **kw)
    return exc.value.errors


# --- golden files -----------------------------------------------------------------

# A test host without Cilium's kube-proxy replacement, on a cgroup v1 kernel, with every option set.
LAB_OPTIONS = {
    "cert_sans": ["api.lab.example.com"], "ignore_preflight_errors": ["SystemVerification"],
    "image_repository": "mirror.example.com:5000/k8s", "dns_domain": "lab.internal", "kube_proxy_mode": "ipvs",
    "kube_proxy_tune_conntrack": False,
    "kubelet_fail_cgroup_v1": False, "kubelet_server_tls_bootstrap": True,
    "etcd_listen_metrics_urls": "http://127.0.0.1:2381,http://[::]:2382", "component_bind_address": "0.0.0.0",
    "encryption_provider": "aescbc", "encryption_resources": ["secrets", "configmaps"],
    "audit_log_maxage": 7, "audit_log_maxbackup": 2, "audit_log_maxsize": 20,
}


def _without_kube_proxy_replacement(variables, _groups, _hostvars):
    variables.setdefault("plinth_components", {})["cilium"] = {"kube_proxy_replacement": False}


def _cases():
    production, staging = spec_of("production"), spec_of("staging")
    lab = spec_of("production", _without_kube_proxy_replacement)
    return {
        "lab-init-cp-1": kubeadm.init_documents(lab, "cp-1", LAB_OPTIONS),
        "production-init-cp-1": kubeadm.init_documents(production, "cp-1", {}, certificate_key=CERT_KEY),
        "staging-init-stg-cp-1": kubeadm.init_documents(staging, "stg-cp-1", {}),
        "production-join-cp-2": kubeadm.join_documents(production, "cp-2", {}, TOKEN, CA_HASH, CERT_KEY,
                                                       control_plane=True),
        "production-join-gw-1": kubeadm.join_documents(production, "gw-1", {}, TOKEN, CA_HASH),
        "production-join-ceph-1": kubeadm.join_documents(production, "ceph-1", {}, TOKEN, CA_HASH),
        "production-join-worker-1": kubeadm.join_documents(production, "worker-1", {}, TOKEN, CA_HASH),
        "control-plane-files": [doc for _path, doc in sorted(kubeadm.control_plane_files({}, [KEY]).items())],
    }


def _golden_files(docs):
    """One file per document: ``<position>-<kind>.yaml``."""
    return dict(("%d-%s.yaml" % (index, doc["kind"].lower()), "---\n" + gitops.dump([doc]))
                for index, doc in enumerate(docs))


@pytest.mark.parametrize("case", sorted(_cases()))
def test_documents_match_golden_files(case):
    """Spec in -> kubeadm documents out; regenerate with PLINTH_UPDATE_GOLDEN=1 after a deliberate change."""
    files = _golden_files(_cases()[case])
    folder = os.path.join(GOLDEN, case)
    if UPDATE:
        rewrite_golden_files(folder, files)
    assert sorted(os.listdir(folder)) == sorted(files), "golden file set differs: PLINTH_UPDATE_GOLDEN=1 to refresh"
    for name, content in files.items():
        with open(os.path.join(folder, name)) as handle:
            assert handle.read() == content, os.path.join(case, name)


def test_rendered_text_is_the_documents_in_order_and_deterministic():
    spec = spec_of()
    text = kubeadm.init_config(spec, "cp-1", {})
    assert text == kubeadm.init_config(spec_of(), "cp-1", {})
    # kubeadm refuses a leading chunk without a kind: the header sits inside the first document.
    assert text.startswith("---\n# kubeadm init configuration of cp-1, generated by Plinth from the 'production' "
                           "inventory.\napiVersion: kubeadm.k8s.io/v1beta4\n")
    assert [d["kind"] for d in yaml.safe_load_all(text)] == [
        "InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    assert list(yaml.safe_load_all(text)) == kubeadm.init_documents(spec, "cp-1", {})
    join_text = kubeadm.join_config(spec, "gw-1", {}, TOKEN, [CA_HASH])
    assert list(yaml.safe_load_all(join_text)) == kubeadm.join_documents(spec, "gw-1", {}, TOKEN, CA_HASH)


def rendered_texts():
    """Every golden case as its files, and the init and join configurations as kubeadm reads them."""
    spec = spec_of()
    texts = dict((case, _golden_files(docs)) for case, docs in _cases().items())
    texts["init_config"] = kubeadm.init_config(spec, "cp-1", {})
    texts["join_config"] = kubeadm.join_config(spec, "gw-1", {}, TOKEN, [CA_HASH])
    return texts


def test_rendered_text_is_the_same_under_other_hash_seeds():
    here = sha256_of(rendered_texts())
    module = "ansible_collections.plinth.platform.tests.unit.plugins.module_utils.test_kubeadm"
    assert [digest_in_fresh_process(module, "rendered_texts", seed) for seed in (1, 2)] == [here, here]


def test_every_document_has_its_api_version():
    docs = _cases()
    versions = set((d["kind"], d["apiVersion"]) for case in docs.values() for d in case)
    assert versions == {
        ("InitConfiguration", "kubeadm.k8s.io/v1beta4"),
        ("ClusterConfiguration", "kubeadm.k8s.io/v1beta4"),
        ("JoinConfiguration", "kubeadm.k8s.io/v1beta4"),
        ("KubeletConfiguration", "kubelet.config.k8s.io/v1beta1"),
        ("KubeProxyConfiguration", "kubeproxy.config.k8s.io/v1alpha1"),
        ("EncryptionConfiguration", "apiserver.config.k8s.io/v1"),
        ("Policy", "audit.k8s.io/v1"),
    }


# --- init: the cluster ------------------------------------------------------------

def test_ha_control_plane_sans_hold_the_endpoint_and_every_control_plane_host():
    cluster = init()["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "192.0.2.10:6443"
    assert cluster["apiServer"]["certSANs"] == [
        "192.0.2.10", "192.0.2.11", "192.0.2.12", "192.0.2.13", "cp-1", "cp-2", "cp-3"]


def test_extra_sans_are_added_once_and_sorted():
    options = {"cert_sans": ["api.example.com", "192.0.2.10", "api.example.com", "2001:db8::10"]}
    sans = init(options=options)["ClusterConfiguration"]["apiServer"]["certSANs"]
    assert sans == sorted(set(sans))
    assert {"api.example.com", "2001:db8::10", "192.0.2.10"} <= set(sans)
    assert sans.count("192.0.2.10") == 1


def test_single_control_plane():
    docs = init("staging")
    cluster = docs["ClusterConfiguration"]
    assert cluster["clusterName"] == "staging"
    assert cluster["controlPlaneEndpoint"] == "198.51.100.11:6443"
    assert cluster["apiServer"]["certSANs"] == ["198.51.100.11", "stg-cp-1"]
    assert docs["InitConfiguration"]["localAPIEndpoint"] == {"advertiseAddress": "198.51.100.11", "bindPort": 6443}
    assert "certificateKey" not in docs["InitConfiguration"]


def test_networks_and_version_come_from_the_spec():
    def edit(variables, _groups, _hostvars):
        variables["plinth_pod_cidr"] = "172.20.0.0/16"
        variables["plinth_service_cidr"] = "172.21.0.0/20"
        variables["plinth_kubernetes_version"] = "1.35.2"
        variables["plinth_control_plane_endpoint"] = {"host": "api.prod.example.com", "port": 8443}

    docs = init(edit=edit, options={"dns_domain": "prod.internal"})
    cluster = docs["ClusterConfiguration"]
    assert cluster["networking"] == {"podSubnet": "172.20.0.0/16", "serviceSubnet": "172.21.0.0/20",
                                     "dnsDomain": "prod.internal"}
    assert cluster["kubernetesVersion"] == "v1.35.2"
    assert cluster["controlPlaneEndpoint"] == "api.prod.example.com:8443"
    assert "api.prod.example.com" in cluster["apiServer"]["certSANs"]
    assert docs["InitConfiguration"]["localAPIEndpoint"]["bindPort"] == 8443


def test_ipv6_endpoint_is_bracketed():
    spec = spec_of()
    spec["control_plane_endpoint"]["host"] = "2001:db8::10"
    cluster = by_kind(kubeadm.init_documents(spec, "cp-1"))["ClusterConfiguration"]
    assert cluster["controlPlaneEndpoint"] == "[2001:db8::10]:6443"
    join_doc = kubeadm.join_documents(spec, "worker-1", None, TOKEN, CA_HASH)[0]
    assert join_doc["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "[2001:db8::10]:6443"


def test_host_known_by_name_only_lets_kubeadm_detect_its_address():
    def edit(_variables, _groups, hostvars):
        del hostvars["cp-1"]["ansible_host"]

    docs = init(edit=edit)
    assert docs["InitConfiguration"]["localAPIEndpoint"] == {"bindPort": 6443}
    assert "kubeletExtraArgs" not in docs["InitConfiguration"]["nodeRegistration"]


def test_secrets_encryption_and_audit_are_wired_into_the_api_server():
    api = init()["ClusterConfiguration"]["apiServer"]
    assert args(api) == {
        "encryption-provider-config": "/etc/kubernetes/encryption/config.yaml",
        "encryption-provider-config-automatic-reload": "true",
        "audit-policy-file": "/etc/kubernetes/audit/policy.yaml",
        "audit-log-path": "/var/log/kubernetes/audit/audit.log",
        "audit-log-maxage": "30",
        "audit-log-maxbackup": "10",
        "audit-log-maxsize": "100",
    }
    assert [a["name"] for a in api["extraArgs"]] == sorted(a["name"] for a in api["extraArgs"])
    volumes = dict((v["name"], v) for v in api["extraVolumes"])
    assert volumes == {
        "encryption-config": {"name": "encryption-config", "hostPath": "/etc/kubernetes/encryption",
                              "mountPath": "/etc/kubernetes/encryption", "readOnly": True, "pathType": "Directory"},
        "audit-policy": {"name": "audit-policy", "hostPath": "/etc/kubernetes/audit",
                         "mountPath": "/etc/kubernetes/audit", "readOnly": True, "pathType": "Directory"},
        "audit-log": {"name": "audit-log", "hostPath": "/var/log/kubernetes/audit",
                      "mountPath": "/var/log/kubernetes/audit", "readOnly": False, "pathType": "DirectoryOrCreate"},
    }


def test_encryption_and_audit_follow_their_options():
    options = {"audit_log_maxage": 7, "audit_log_maxbackup": 3, "audit_log_maxsize": 50,
               "encryption_config_file": "/etc/plinth/encryption/secrets.yaml"}
    api = init(options=options)["ClusterConfiguration"]["apiServer"]
    assert args(api)["audit-log-maxage"] == "7"
    assert args(api)["encryption-provider-config"] == "/etc/plinth/encryption/secrets.yaml"
    assert {"/etc/plinth/encryption", "/etc/kubernetes/audit", "/var/log/kubernetes/audit"} == set(
        v["hostPath"] for v in api["extraVolumes"])

    api = init(options={"secrets_encryption": False, "audit": False})["ClusterConfiguration"]["apiServer"]
    assert "extraArgs" not in api and "extraVolumes" not in api


def test_images_etcd_metrics_and_component_bind_address():
    options = {"image_repository": "mirror.example.com:5000/k8s", "etcd_listen_metrics_urls": "http://0.0.0.0:2381",
               "component_bind_address": "0.0.0.0"}
    cluster = init(options=options)["ClusterConfiguration"]
    assert cluster["imageRepository"] == "mirror.example.com:5000/k8s"
    assert args(cluster["etcd"]["local"]) == {"listen-metrics-urls": "http://0.0.0.0:2381"}
    assert args(cluster["controllerManager"]) == args(cluster["scheduler"]) == {"bind-address": "0.0.0.0"}

    cluster = init(options={"etcd_listen_metrics_urls": "", "component_bind_address": None})["ClusterConfiguration"]
    assert cluster["imageRepository"] == "registry.k8s.io"
    assert cluster["etcd"] == {"local": {"dataDir": "/var/lib/etcd"}}
    assert "controllerManager" not in cluster and "scheduler" not in cluster


def test_kubelet_configuration():
    kubelet = init()["KubeletConfiguration"]
    assert kubelet == {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                       "cgroupDriver": "systemd", "failCgroupV1": True, "rotateCertificates": True,
                       "serverTLSBootstrap": True}
    kubelet = init(options={"kubelet_fail_cgroup_v1": False, "kubelet_server_tls_bootstrap": False})
    assert kubelet["KubeletConfiguration"]["failCgroupV1"] is False
    assert kubelet["KubeletConfiguration"]["serverTLSBootstrap"] is False


def test_first_control_plane_host_registers_tainted_with_its_own_address():
    docs = init(certificate_key=CERT_KEY, options={"ignore_preflight_errors": ["SystemVerification"]})
    first = docs["InitConfiguration"]
    assert first["certificateKey"] == CERT_KEY
    assert first["localAPIEndpoint"] == {"advertiseAddress": "192.0.2.11", "bindPort": 6443}
    assert first["nodeRegistration"] == {
        "name": "cp-1",
        "criSocket": "unix:///run/containerd/containerd.sock",
        "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        "kubeletExtraArgs": [{"name": "node-ip", "value": "192.0.2.11"}],
        "ignorePreflightErrors": ["SystemVerification"],
    }


# --- kube-proxy ------------------------------------------------------------------

def test_kube_proxy_is_skipped_when_cilium_replaces_it():
    docs = init()
    assert docs["InitConfiguration"]["skipPhases"] == ["addon/kube-proxy"]
    assert docs["ClusterConfiguration"]["proxy"] == {"disabled": True}
    assert "KubeProxyConfiguration" not in docs


@pytest.mark.parametrize("cilium", [{"kube_proxy_replacement": False}, {"enabled": False}])
def test_kube_proxy_runs_without_cilium_replacement(cilium):
    def edit(variables, _groups, _hostvars):
        variables.setdefault("plinth_components", {})["cilium"] = cilium

    docs = init(edit=edit, options={"kube_proxy_mode": "nftables"})
    assert "skipPhases" not in docs["InitConfiguration"]
    assert "proxy" not in docs["ClusterConfiguration"]
    assert docs["KubeProxyConfiguration"] == {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                                              "kind": "KubeProxyConfiguration", "mode": "nftables",
                                              "clusterCIDR": "10.244.0.0/16"}


def test_kube_proxy_leaves_the_kernels_conntrack_settings_when_told():
    def edit(variables, _groups, _hostvars):
        variables.setdefault("plinth_components", {})["cilium"] = {"enabled": False}

    conntrack = init(edit=edit, options={"kube_proxy_tune_conntrack": False})["KubeProxyConfiguration"]["conntrack"]
    assert conntrack == {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"}


# --- join -------------------------------------------------------------------------

def test_gateway_registers_with_its_taint_and_label():
    registration = join("gw-1")["nodeRegistration"]
    assert registration["name"] == "gw-1"
    assert registration["taints"] == [{"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}]
    assert args({"extraArgs": registration["kubeletExtraArgs"]}) == {"node-ip": "192.0.2.21",
                                                                     "node-labels": "node.kong.gateway=true"}


def test_storage_registers_with_its_taint_and_label():
    registration = join("ceph-2")["nodeRegistration"]
    assert registration["taints"] == [{"key": "node.ceph.storage", "value": "true", "effect": "NoSchedule"}]
    assert args({"extraArgs": registration["kubeletExtraArgs"]})["node-labels"] == "node.ceph.storage=true"


def test_worker_registers_untainted_with_its_label():
    doc = join("worker-3")
    registration = doc["nodeRegistration"]
    assert registration["taints"] == []
    assert args({"extraArgs": registration["kubeletExtraArgs"]}) == {"node-ip": "192.0.2.43",
                                                                     "node-labels": "node.role=worker"}
    assert "controlPlane" not in doc
    assert doc["discovery"] == {"bootstrapToken": {"apiServerEndpoint": "192.0.2.10:6443", "token": TOKEN,
                                                   "caCertHashes": [CA_HASH]}}


def test_further_control_plane_host_joins_with_its_endpoint_and_the_certificate_key():
    doc = join("cp-3", control_plane=True)
    assert doc["controlPlane"] == {"localAPIEndpoint": {"advertiseAddress": "192.0.2.13", "bindPort": 6443},
                                   "certificateKey": CERT_KEY}
    assert doc["nodeRegistration"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane",
                                                  "effect": "NoSchedule"}]
    assert doc["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "192.0.2.10:6443"


def test_several_labels_and_ca_pins_are_sorted():
    def edit(variables, _groups, _hostvars):
        variables["plinth_node_pools"]["worker"]["labels"] = {"zone.example.com/rack": "r2", "node.role": "worker"}

    spec = spec_of(edit=edit)
    other = "sha256:" + "f" * 64
    doc = kubeadm.join_documents(spec, "worker-1", {}, TOKEN, [other, CA_HASH, other])[0]
    assert doc["discovery"]["bootstrapToken"]["caCertHashes"] == [CA_HASH, other]
    labels = args({"extraArgs": doc["nodeRegistration"]["kubeletExtraArgs"]})["node-labels"]
    assert labels == "node.role=worker,zone.example.com/rack=r2"


def test_labels_a_kubelet_may_not_set_are_left_to_node_topology():
    def edit(variables, _groups, _hostvars):
        variables["plinth_node_pools"]["gateway"]["labels"] = {
            "node.kong.gateway": "true", "node-role.kubernetes.io/gateway": "",
            "node.kubernetes.io/pool": "gateway", "example.k8s.io/x": "y"}

    spec = spec_of(edit=edit)
    found = kubeadm.node_registration(spec, "gw-2")
    assert found["labels"] == {"node.kong.gateway": "true", "node.kubernetes.io/pool": "gateway"}
    assert found["deferred_labels"] == {"node-role.kubernetes.io/gateway": "", "example.k8s.io/x": "y"}
    registration = kubeadm.join_documents(spec, "gw-2", {}, TOKEN, CA_HASH)[0]["nodeRegistration"]
    labels = args({"extraArgs": registration["kubeletExtraArgs"]})["node-labels"]
    assert labels == "node.kong.gateway=true,node.kubernetes.io/pool=gateway"


@pytest.mark.parametrize("key,allowed", [
    ("node.kong.gateway", True), ("node.role", True), ("example.com/team", True),
    ("kubernetes.io/hostname", True), ("topology.kubernetes.io/zone", True),
    ("node.kubernetes.io/instance-type", True), ("node.kubernetes.io/anything", True),
    ("x.kubelet.kubernetes.io/y", True),
    ("node-role.kubernetes.io/worker", False), ("kubernetes.io/role", False), ("k8s.io/x", False),
    ("node-restriction.kubernetes.io/pool", False), ("sub.k8s.io/x", False),
])
def test_kubelet_may_set(key, allowed):
    assert kubeadm.kubelet_may_set(key) is allowed


def test_control_plane_host_in_a_pool_keeps_both_taints_and_gets_the_labels():
    def edit(variables, groups, _hostvars):
        variables["plinth_node_pools"]["infra"] = {
            "group": "control_plane", "labels": {"node.role": "infra"},
            "taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                       {"key": "node.infra", "value": "true", "effect": "NoSchedule"}]}

    registration = init(edit=edit)["InitConfiguration"]["nodeRegistration"]
    assert registration["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                                      {"key": "node.infra", "value": "true", "effect": "NoSchedule"}]
    assert args({"extraArgs": registration["kubeletExtraArgs"]})["node-labels"] == "node.role=infra"


# --- the API server's files ------------------------------------------------------

def test_encryption_config_encrypts_with_the_first_key_and_reads_plain_data_last():
    old = {"name": "key-0", "secret": base64.b64encode(b"o" * 32).decode("ascii")}
    config = kubeadm.encryption_config([KEY, old])
    rules = config["resources"]
    assert len(rules) == 1 and rules[0]["resources"] == ["secrets"]
    assert rules[0]["providers"] == [{"secretbox": {"keys": [KEY, old]}}, {"identity": {}}]

    aescbc = kubeadm.encryption_config([KEY], {"encryption_provider": "aescbc",
                                               "encryption_resources": ["secrets", "configmaps"]})
    assert aescbc["resources"][0]["resources"] == ["secrets", "configmaps"]
    assert list(aescbc["resources"][0]["providers"][0]) == ["aescbc"]


def test_encryption_keys_are_checked_without_showing_them():
    short = {"name": "key-1", "secret": base64.b64encode(b"s" * 16).decode("ascii")}
    errors = problems(kubeadm.encryption_config, [short, {"name": "key-1", "secret": "not base64!"}, "x"])
    text = "\n".join(errors)
    assert short["secret"] not in text and "not base64!" not in text
    assert "control_plane_encryption_keys[0].secret: got '<redacted, 24 characters>'; must be the base64 of a " \
           "32-byte random key for secretbox" in errors
    assert any(e.startswith("control_plane_encryption_keys[1].name: got 'key-1'; key names must be unique")
               for e in errors)
    assert any(e.startswith("control_plane_encryption_keys[2]: ") for e in errors)
    assert kubeadm.encryption_config([short], {"encryption_provider": "aescbc"})
    assert problems(kubeadm.encryption_config, []) == [
        "control_plane_encryption_keys: got nothing; must list at least one {name, secret} key; the first one encrypts"]


def test_audit_policy_keeps_secret_bodies_out_and_records_changes():
    policy = kubeadm.audit_policy()
    assert policy["omitStages"] == ["RequestReceived"]
    rules = policy["rules"]
    assert rules[-1] == {"level": "Metadata"}

    def first_rule(group, resource, verb):
        for rule in rules:
            if "nonResourceURLs" in rule:
                continue
            if "verbs" in rule and verb not in rule["verbs"]:
                continue
            if "users" in rule or "userGroups" in rule:
                continue
            if "resources" in rule and not any(
                    r["group"] == group and resource in r["resources"] for r in rule["resources"]):
                continue
            return rule["level"]
        raise AssertionError("no rule")

    assert first_rule("", "secrets", "create") == "Metadata"
    assert first_rule("", "secrets", "get") == "Metadata"
    assert first_rule("", "configmaps", "update") == "Metadata"
    assert first_rule("authentication.k8s.io", "tokenreviews", "create") == "Metadata"
    assert first_rule("", "pods/exec", "create") == "Metadata"
    assert first_rule("apps", "deployments", "patch") == "Request"
    assert first_rule("", "pods", "delete") == "Request"
    assert first_rule("", "pods", "list") == "Metadata"
    assert first_rule("", "events", "create") == "None"
    assert rules[0] == {"level": "None", "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version"]}


def test_control_plane_files_follow_the_options():
    files = kubeadm.control_plane_files({}, [KEY])
    assert sorted(files) == ["/etc/kubernetes/audit/policy.yaml", "/etc/kubernetes/encryption/config.yaml"]
    assert files["/etc/kubernetes/audit/policy.yaml"] == kubeadm.audit_policy()
    assert files["/etc/kubernetes/encryption/config.yaml"] == kubeadm.encryption_config([KEY])

    assert sorted(kubeadm.control_plane_files({"secrets_encryption": False})) == ["/etc/kubernetes/audit/policy.yaml"]
    assert kubeadm.control_plane_files({"secrets_encryption": False, "audit": False}) == {}
    assert problems(kubeadm.control_plane_files, {}) == [
        "control_plane_encryption_keys: got nothing; must list at least one {name, secret} key; the first one encrypts"]

    texts = kubeadm.control_plane_file_texts({"audit_policy_file": "/etc/plinth/audit/policy.yaml"}, [KEY])
    assert sorted(texts) == ["/etc/kubernetes/encryption/config.yaml", "/etc/plinth/audit/policy.yaml"]
    assert texts["/etc/plinth/audit/policy.yaml"].startswith("---\n# Policy, generated by Plinth.\napiVersion: ")
    assert yaml.safe_load(texts["/etc/kubernetes/encryption/config.yaml"]) == kubeadm.encryption_config([KEY])


# --- options ----------------------------------------------------------------------

def test_default_options_are_complete():
    defaults = kubeadm.default_options()
    assert sorted(defaults) == sorted(kubeadm.OPTIONS)
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
    errors = problems(kubeadm.init_documents, spec_of(), "cp-1", options)
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
        assert kubeadm.init_documents(spec, "cp-1", {option: value})
    else:
        errors = problems(kubeadm.init_documents, spec, "cp-1", {option: value})
        assert len(errors) == 1 and errors[0].startswith("control_plane_%s: got %r" % (option, value))
        assert errors[0].endswith("every control-plane host shares it, so it must be 0.0.0.0, ::, 127.0.0.1 or ::1")


def test_file_options_need_directories_of_their_own():
    options = {"encryption_config_file": "/etc/kubernetes/encryption.yaml",
               "audit_policy_file": "/var/log/kubernetes/audit/policy.yaml",
               "audit_log_file": "relative/audit.log"}
    errors = problems(kubeadm.init_documents, spec_of(), "cp-1", options)
    assert len(errors) == 2, errors
    assert errors[0].startswith("control_plane_encryption_config_file: got '/etc/kubernetes/encryption.yaml'; "
                                "must sit in a directory of its own")
    assert errors[1] == ("control_plane_audit_log_file: got 'relative/audit.log'; must be an absolute, "
                         "normalized path")

    options = {"audit_policy_file": "/etc/kubernetes/audit/policy.yaml",
               "audit_log_file": "/etc/kubernetes/audit/audit.log"}
    errors = problems(kubeadm.init_documents, spec_of(), "cp-1", options)
    assert errors == ["control_plane_audit_log_file: got '/etc/kubernetes/audit/audit.log'; shares the directory "
                      "/etc/kubernetes/audit with control_plane_audit_policy_file; each file is mounted into "
                      "kube-apiserver through a directory of its own"]
    # Only the files in use need their own directory.
    assert init(options=dict(options, audit=False))


def test_join_options_are_named_after_the_role_that_joins():
    spec = spec_of()
    errors = problems(kubeadm.join_documents, spec, "worker-1", {"cri_socket": "tcp://x"}, TOKEN, CA_HASH)
    assert errors[0].startswith("node_join_cri_socket: got 'tcp://x'")
    errors = problems(kubeadm.join_documents, spec, "cp-2", {"cri_socket": "tcp://x"}, TOKEN, CA_HASH, CERT_KEY,
                      control_plane=True)
    assert errors[0].startswith("control_plane_cri_socket: got 'tcp://x'")
    assert problems(kubeadm.init_documents, spec, "cp-1", ["cert_sans"]) == [
        "control_plane: got ['cert_sans']; must be a mapping of option name to value"]


# --- hosts, versions and run-time secrets --------------------------------------------

def test_hosts_must_fit_the_command():
    spec = spec_of()
    assert problems(kubeadm.init_documents, spec, "worker-1") == [
        "host: got 'worker-1'; is not in the control-plane group control_plane"]
    assert problems(kubeadm.join_documents, spec, "cp-2", None, TOKEN, CA_HASH) == [
        "host: got 'cp-2'; is a control-plane host (group control_plane): join it as one"]
    assert problems(kubeadm.join_documents, spec, "gw-1", None, TOKEN, CA_HASH, CERT_KEY, control_plane=True) == [
        "host: got 'gw-1'; is not in the control-plane group control_plane"]
    errors = problems(kubeadm.join_documents, spec, "nowhere", None, TOKEN, CA_HASH)
    assert errors[0].startswith("host: got 'nowhere'; is not a host of the platform (known: ceph-1, ceph-2")


def test_host_names_must_be_node_names():
    def edit(_variables, groups, hostvars):
        groups["workers"] = sorted(groups["workers"] + ["Worker_4"])
        hostvars["Worker_4"] = {"ansible_host": "192.0.2.44"}

    errors = problems(kubeadm.join_documents, spec_of(edit=edit), "Worker_4", None, TOKEN, CA_HASH)
    assert errors == ["host: got 'Worker_4'; is the Node name and must be a DNS subdomain (lowercase letters, "
                      "digits, '-' and '.')"]


def test_kubernetes_older_than_v1beta4_is_refused():
    def edit(variables, _groups, _hostvars):
        variables["plinth_kubernetes_version"] = "1.30.9"

    assert problems(kubeadm.init_documents, spec_of(edit=edit), "cp-1") == [
        "plinth_kubernetes_version: got '1.30.9'; kubeadm configuration kubeadm.k8s.io/v1beta4 needs Kubernetes "
        "1.31 or newer"]


def test_run_time_secrets_are_checked_without_showing_them():
    spec = spec_of()
    leaked = ["abcdef.ABCDEF0123456789", "sha256:abc", "0123"]
    errors = problems(kubeadm.join_documents, spec, "cp-2", None, leaked[0], [leaked[1]], leaked[2],
                      control_plane=True)
    assert errors == [
        "token: got '<redacted, 23 characters>'; must be a bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}",
        "ca_cert_hashes[0]: got '<redacted, 10 characters>'; must be sha256: and 64 hexadecimal digits",
        "certificate_key: got '<redacted, 4 characters>'; must be 64 hexadecimal digits",
    ]
    errors = problems(kubeadm.join_documents, spec, "worker-1")
    assert errors == [
        "token: got nothing; must be a bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}",
        "ca_cert_hashes: got nothing; must be one or more sha256:<64 hex digits> pins of the cluster CA",
    ]
    assert problems(kubeadm.join_documents, spec, "worker-1", None, TOKEN, CA_HASH, CERT_KEY) == [
        "certificate_key: got '<redacted, 64 characters>'; is for control-plane joins only"]
    assert problems(kubeadm.init_documents, spec, "cp-1", None, "xyz") == [
        "certificate_key: got '<redacted, 3 characters>'; must be 64 hexadecimal digits"]


def test_encryption_keys_read_back_from_the_written_file():
    keys = [{"name": "key-2", "secret": base64.b64encode(b"b" * 32).decode()},
            {"name": "key-1", "secret": base64.b64encode(b"a" * 32).decode()}]
    for provider in ("secretbox", "aescbc"):
        texts = kubeadm.control_plane_file_texts({"encryption_provider": provider}, keys)
        assert kubeadm.encryption_keys_in(texts["/etc/kubernetes/encryption/config.yaml"]) == keys


@pytest.mark.parametrize("text", ["", None, "kind: Policy\n", "resources: []\n",
                                  "resources:\n- providers:\n  - identity: {}\n"])
def test_encryption_keys_of_a_file_without_keys(text):
    assert kubeadm.encryption_keys_in(text) == []


JOIN_COMMAND = ("kubeadm join 10.0.0.10:6443 --token abcdef.0123456789abcdef "
                "--discovery-token-ca-cert-hash sha256:%s \n" % ("0a" * 32))


def test_join_credentials_from_kubeadm_output(production):
    upload = ("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n"
              "[upload-certs] Using certificate key:\n%s\n" % ("f0" * 32))
    found = kubeadm.join_credentials(JOIN_COMMAND, upload)
    assert found == {"token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:" + "0a" * 32,
                     "certificate_key": "f0" * 32}
    assert set(kubeadm.join_credentials(JOIN_COMMAND)) == {"token", "ca_cert_hash"}
    # What it reads is what the join configuration accepts.
    kubeadm.join_documents(build_spec(*production), "worker-1", {},
                           token=found["token"], ca_cert_hashes=found["ca_cert_hash"])


@pytest.mark.parametrize("command,upload,missing", [
    ("kubeadm join 10.0.0.10:6443 --discovery-token-ca-cert-hash sha256:00", None, "--token"),
    ("kubeadm join 10.0.0.10:6443 --token secret.value", None, "--discovery-token-ca-cert-hash"),
    (JOIN_COMMAND, "[upload-certs] Using certificate key:\n", "certificate key"),
])
def test_join_credentials_name_what_is_missing_and_show_nothing(command, upload, missing):
    with pytest.raises(ValueError) as exc:
        kubeadm.join_credentials(command, upload)
    message = str(exc.value)
    assert missing in message and "<redacted, " in message
    assert "secret" not in message and "f0f0" not in message

"""The cluster site.yml's host stages built on the test hosts: kubeadm init on cp-1 by the
control_plane role, gw-1 and worker-1 joined by node_join, read back from the hosts and the API."""

import json
import os

import pytest
import yaml

testinfra_hosts = ["control_plane"]

INIT_CONFIG = "/etc/plinth/kubeadm/init.yaml"
VIP = "10.123.64.100"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf "
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
GATEWAY_TAINT = {"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}


def kubectl_json(host, args):
    return json.loads(host.check_output(KUBECTL + args + " -o json"))


def test_generated_kubeadm_configuration_is_kept_and_valid(host):
    config = host.file(INIT_CONFIG)
    assert config.exists and config.user == "root" and config.mode == 0o600
    assert "certificateKey" not in config.content_string and "token" not in config.content_string
    result = host.run("kubeadm config validate --config %s" % INIT_CONFIG)
    assert result.rc == 0, result.stderr


def test_control_plane_runs_from_the_preloaded_images(host):
    running = json.loads(host.check_output("crictl ps -o json"))["containers"]
    names = set(c["metadata"]["name"] for c in running if c["state"] == "CONTAINER_RUNNING")
    assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"} <= names


def test_cluster_configuration_comes_from_the_inventory(host):
    config = yaml.safe_load(kubectl_json(host, "-n kube-system get configmap kubeadm-config")
                            ["data"]["ClusterConfiguration"])
    assert config["controlPlaneEndpoint"] == "%s:6443" % VIP
    assert (config["networking"]["podSubnet"], config["networking"]["serviceSubnet"]) == ("10.244.0.0/16",
                                                                                           "10.96.0.0/12")
    args = dict((a["name"], a["value"]) for a in config["apiServer"]["extraArgs"])
    assert args["encryption-provider-config"] == "/etc/kubernetes/encryption/config.yaml"
    assert args["audit-policy-file"] == "/etc/kubernetes/audit/policy.yaml"
    manifest = host.file("/etc/kubernetes/manifests/kube-apiserver.yaml").content_string
    assert "--encryption-provider-config=/etc/kubernetes/encryption/config.yaml" in manifest


def test_api_server_files_are_private_and_the_audit_log_fills(host):
    for path, kind in (("/etc/kubernetes/encryption/config.yaml", "EncryptionConfiguration"),
                       ("/etc/kubernetes/audit/policy.yaml", "Policy")):
        written = host.file(path)
        assert written.exists and written.mode == 0o600 and written.user == "root"
        assert "kind: %s" % kind in written.content_string
        assert host.file(os.path.dirname(path)).mode == 0o700
    host.check_output(KUBECTL + "get namespaces")
    log = host.file("/var/log/kubernetes/audit/audit.log")
    assert log.exists and '"kind":"Event"' in log.content_string


def test_every_host_registered_with_its_pools_taints_and_labels(host):
    nodes = dict((n["metadata"]["name"], n) for n in kubectl_json(host, "get nodes")["items"])
    assert sorted(nodes) == ["cp-1", "gw-1", "worker-1"]
    taints = dict((name, [dict((k, t[k]) for k in ("key", "value", "effect") if k in t)
                          for t in n["spec"].get("taints", []) if not t["key"].startswith("node.kubernetes.io/")])
                  for name, n in nodes.items())
    assert taints["cp-1"] == [CONTROL_PLANE_TAINT]
    assert taints["gw-1"] == [GATEWAY_TAINT]
    assert taints["worker-1"] == []
    assert nodes["gw-1"]["metadata"]["labels"]["node.kong.gateway"] == "true"
    assert nodes["worker-1"]["metadata"]["labels"]["node.role"] == "worker"
    for node in nodes.values():
        address = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"]
        assert address and address[0].startswith("10.123.64.")


def test_admin_kubeconfig_fetched_to_the_controller():
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "admin.conf")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path) as handle:
        config = yaml.safe_load(handle)
    assert config["clusters"][0]["cluster"]["server"] == "https://%s:6443" % VIP


def test_kube_vip_holds_the_endpoint_with_the_admin_kubeconfig(host):
    pod = yaml.safe_load(host.file("/etc/kubernetes/manifests/kube-vip.yaml").content_string)
    env = dict((item["name"], item["value"]) for item in pod["spec"]["containers"][0]["env"])
    assert (env["address"], env["vip_interface"]) == (VIP, "eth0")
    # super-admin.conf was lent for kubeadm init only.
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf"
    assert VIP in host.check_output("ip -4 -o addr show dev eth0")

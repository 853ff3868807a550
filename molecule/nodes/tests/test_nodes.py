"""What nodes.yml leaves on every host, read from the hosts themselves."""

import json
import re

import pytest

testinfra_hosts = ["k8s_cluster"]

KUBERNETES_VERSION = "1.36.3"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.10.2"


def test_swap_is_off(host):
    assert host.file("/proc/swaps").content_string.strip().splitlines()[1:] == []
    fstab = host.file("/etc/fstab")
    if fstab.exists:
        active = [line.split() for line in fstab.content_string.splitlines()
                  if line.strip() and not line.lstrip().startswith("#")]
        assert not [fields for fields in active if len(fields) > 2 and fields[2] == "swap"]


def test_kernel_modules_are_persisted(host):
    modules = host.file("/etc/modules-load.d/kubernetes.conf")
    assert modules.exists and modules.user == "root" and modules.mode == 0o644
    listed = [line for line in modules.content_string.splitlines() if line and not line.startswith("#")]
    assert {"overlay", "br_netfilter"} <= set(listed)


@pytest.mark.parametrize("key", ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
                                 "net.bridge.bridge-nf-call-ip6tables"])
def test_sysctl_is_persisted_and_applied(host, key):
    persisted = host.file("/etc/sysctl.d/90-kubernetes.conf").content_string
    assert re.search(r"^%s\s*=\s*1$" % re.escape(key), persisted, re.M)
    assert host.sysctl(key) == 1


def test_chrony_runs_without_steering_the_clock(host):
    assert host.service("chrony").is_running
    assert host.service("chrony").is_enabled
    assert "-x" in host.check_output("ps -o args= -C chronyd").split()
    config = host.file("/etc/chrony/chrony.conf").content_string
    assert re.search(r"^server \S+ iburst$", config, re.M)


def test_containerd_runs_with_systemd_cgroups(host):
    containerd = host.service("containerd")
    assert containerd.is_running and containerd.is_enabled
    config = host.file("/etc/containerd/config.toml").content_string
    assert re.search(r"^\s*SystemdCgroup = true$", config, re.M)
    assert 'sandbox_image = "%s"' % SANDBOX_IMAGE in config or 'sandbox = "%s"' % SANDBOX_IMAGE in config
    assert 'config_path = "/etc/containerd/certs.d"' in config


def test_crictl_talks_to_containerd(host):
    assert "runtime-endpoint: unix:///run/containerd/containerd.sock" in host.file("/etc/crictl.yaml").content_string
    info = json.loads(host.check_output("crictl info"))
    assert info["config"]["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert info["config"]["sandboxImage"] == SANDBOX_IMAGE
    assert info["config"]["registry"]["configPath"] == "/etc/containerd/certs.d"
    assert info["status"]["conditions"][0]["type"] == "RuntimeReady"
    assert info["status"]["conditions"][0]["status"] is True


def test_kubernetes_binaries_at_the_pinned_version(host):
    assert host.check_output("kubeadm version -o short") == "v" + KUBERNETES_VERSION
    assert host.check_output("kubelet --version") == "Kubernetes v" + KUBERNETES_VERSION
    client = json.loads(host.check_output("kubectl version --client -o json"))
    assert client["clientVersion"]["gitVersion"] == "v" + KUBERNETES_VERSION
    assert host.run("crictl --version").rc == 0


def source(host):
    return host.ansible.get_variables().get("kubernetes_packages_source", "repository")


def test_kubelet_unit_is_configured_and_enabled(host):
    kubelet = host.service("kubelet")
    assert kubelet.is_enabled
    binary = "/usr/local/bin/kubelet" if source(host) == "mirror" else "/usr/bin/kubelet"
    assert host.file(binary).mode == 0o755
    unit = host.check_output("systemctl cat kubelet.service")
    assert "ExecStart=%s $KUBELET_KUBECONFIG_ARGS" % binary in unit
    assert "--config=/var/lib/kubelet/config.yaml" in unit
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in unit


def test_packages_are_held_at_the_pinned_version(host):
    if source(host) != "repository":
        pytest.skip("installed from the artifact mirror")
    for name in ("kubeadm", "kubelet", "kubectl"):
        package = host.package(name)
        assert package.is_installed and package.version.startswith(KUBERNETES_VERSION + "-")
    selections = host.check_output("dpkg --get-selections kubeadm kubelet kubectl cri-tools").split()
    assert dict(zip(selections[::2], selections[1::2])) == dict.fromkeys(
        ["kubeadm", "kubelet", "kubectl", "cri-tools"], "hold")
    sources = host.file("/etc/apt/sources.list.d/kubernetes.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/kubernetes.asc" in sources


def test_registry_mirrors_are_written_for_containerd(host):
    docker = host.file("/etc/containerd/certs.d/docker.io/hosts.toml").content_string
    assert 'server = "https://registry-1.docker.io"' in docker
    assert re.search(r'^\[host\."http://[0-9.]+:5000"\]$', docker, re.M)
    assert 'capabilities = ["pull", "resolve"]' in docker
    k8s = host.file("/etc/containerd/certs.d/registry.k8s.io/hosts.toml").content_string
    assert 'server = "https://registry.k8s.io"' in k8s
    assert 'capabilities = ["pull"]' in k8s
    assert "override_path = true" in k8s


def test_containerd_keeps_oom_scores_within_its_own(host):
    # The test inventory turns restrict_oom_score_adj on: the hosts lack CAP_SYS_RESOURCE.
    assert json.loads(host.check_output("crictl info"))["config"]["restrictOOMScoreAdj"] is True


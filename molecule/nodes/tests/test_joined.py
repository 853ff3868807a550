"""Every test host is a node of the cluster, and no join secret is left on it."""

testinfra_hosts = ["k8s_cluster"]


def test_host_is_a_node(host):
    assert host.file("/etc/kubernetes/kubelet.conf").exists
    assert host.service("kubelet").is_running
    assert "--node-ip=" in host.file("/var/lib/kubelet/kubeadm-flags.env").content_string


def test_join_configuration_is_gone(host):
    assert not host.file("/etc/plinth/kubeadm/join.yaml").exists
    assert host.file("/etc/plinth/kubeadm").mode == 0o700


def test_api_answers_on_the_endpoint_from_every_host(host):
    probe = ("python3 -c \"import ssl, urllib.request; "
             "print(urllib.request.urlopen('https://10.123.64.100:6443/livez', "
             "context=ssl._create_unverified_context(), timeout=10).read().decode())\"")
    assert host.check_output(probe) == "ok"

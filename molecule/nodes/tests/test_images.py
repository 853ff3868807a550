"""Images preloaded from the artifact mirror: present under the names kubeadm and kubelet use."""

import json

testinfra_hosts = ["k8s_cluster"]

INIT_CONFIG = "/etc/plinth/kubeadm/init.yaml"
# What a node runs whatever its pool: the sandbox of every pod and the kube-proxy DaemonSet.
EVERY_NODE = ("registry.k8s.io/pause:3.10.2", "registry.k8s.io/kube-proxy:v1.36.3")


def images_in_cri(host):
    """Every tag the CRI (what kubelet asks) reports, with the image id behind it."""
    listed = json.loads(host.check_output("crictl images -o json"))["images"]
    return {tag: image["id"] for image in listed for tag in image["repoTags"]}


def kubeadm_images(host):
    """The images `kubeadm init` would pull, from the configuration it will be given."""
    output = host.check_output("kubeadm config images list --config %s" % INIT_CONFIG)
    return [line.strip() for line in output.splitlines() if line.strip()]


def is_control_plane(host):
    return "control_plane" in host.ansible.get_variables()["group_names"]


def test_every_image_kubeadm_needs_is_preloaded(host):
    present = images_in_cri(host)
    if is_control_plane(host):
        wanted = kubeadm_images(host)
        # Without kube-proxy when Cilium replaces it: six images, else seven.
        assert {"registry.k8s.io/etcd:3.6.8-0", "registry.k8s.io/kube-apiserver:v1.36.3"} <= set(wanted)
    else:
        wanted = list(EVERY_NODE)
    assert sorted(set(wanted) - set(present)) == []


def test_images_are_static_binaries_that_run(host):
    # Runs the images' own binaries through containerd, the way kubelet will.
    present = images_in_cri(host)
    for image, command, expected in (
            ("registry.k8s.io/etcd:3.6.8-0", "/usr/local/bin/etcd --version", "etcd Version: 3.6.8"),
            ("registry.k8s.io/kube-proxy:v1.36.3", "/usr/local/bin/kube-proxy --version",
             "Kubernetes v1.36.3"),
            ("registry.k8s.io/kube-proxy:v1.36.3", "iptables --version", "(nf_tables)"),
            ("registry.k8s.io/kube-proxy:v1.36.3", "nft --version", "nftables v"),
            ("registry.k8s.io/pause:3.10.2", "/pause -v", "pause 3.10.2")):
        if image not in present:
            continue
        result = host.run("ctr -n k8s.io run --rm %s plinth-image-check %s" % (image, command))
        assert result.rc == 0, result.stderr
        assert expected in result.stdout, (command, result.stdout)


def test_sandbox_image_is_the_preloaded_pause(host):
    info = json.loads(host.check_output("crictl info"))
    assert info["config"]["sandboxImage"] in images_in_cri(host)


def test_downloaded_tarballs_are_removed(host):
    assert host.check_output("find /var/tmp -maxdepth 1 -name 'plinth-image-*'") == ""

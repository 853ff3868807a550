"""The control plane's files on the first control-plane host, checked by the kubeadm that will use them."""

import yaml

testinfra_hosts = ["control_plane"]

INIT_CONFIG = "/etc/plinth/kubeadm/init.yaml"
VIP = "10.123.64.100"


def test_generated_kubeadm_configuration_is_valid(host):
    config = host.file(INIT_CONFIG)
    assert config.exists and config.user == "root" and config.mode == 0o600
    result = host.run("kubeadm config validate --config %s" % INIT_CONFIG)
    assert result.rc == 0, result.stderr
    assert "ok" in (result.stdout + result.stderr).lower()


def test_kubeadm_init_dry_run_accepts_the_host_and_the_configuration(host):
    result = host.run("kubeadm init --dry-run --config %s" % INIT_CONFIG)
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Your Kubernetes control-plane has initialized successfully" in result.stdout
    # The API server it would start reads the encryption configuration and the audit policy.
    for flag in ("--encryption-provider-config=/etc/kubernetes/encryption/config.yaml",
                 "--audit-policy-file=/etc/kubernetes/audit/policy.yaml",
                 "--advertise-address=10.123.64.11"):
        assert flag in result.stdout, flag
    # The dry run wrote nothing where the real init will.
    assert not host.file("/etc/kubernetes/admin.conf").exists


def test_api_server_files_are_private(host):
    for path, kind in (("/etc/kubernetes/encryption/config.yaml", "EncryptionConfiguration"),
                       ("/etc/kubernetes/audit/policy.yaml", "Policy")):
        written = host.file(path)
        assert written.exists and written.mode == 0o600 and written.user == "root"
        assert "kind: %s" % kind in written.content_string
        assert host.file(path.rsplit("/", 1)[0]).mode == 0o700


def test_kube_vip_holds_the_endpoint(host):
    pod = yaml.safe_load(host.file("/etc/kubernetes/manifests/kube-vip.yaml").content_string)
    assert pod["kind"] == "Pod" and pod["spec"]["hostNetwork"] is True
    env = dict((item["name"], item["value"]) for item in pod["spec"]["containers"][0]["env"])
    assert (env["address"], env["port"], env["vip_arp"], env["vip_interface"]) == (VIP, "6443", "true", "eth0")
    # No cluster yet: the host that creates it lends kube-vip super-admin.conf for kubeadm init.
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/super-admin.conf"

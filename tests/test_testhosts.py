"""The test-host tool's pure parts: layout, inventory, rootfs recipe, apt sources, file
placement. Booting hosts needs root and systemd-nspawn: the `nodes` scenario does that."""

import argparse
import os
import stat

import pytest
import yaml

from testbed.testhosts import commands, common, network, nspawn, rootfs


def layout(hosts=network.DEFAULT_HOSTS, subnet="10.123.0.0/24", prefix="plinth", root="copy"):
    return network.plan(argparse.Namespace(hosts=hosts, subnet=subnet, prefix=prefix, root=root))


def test_default_layout_addresses_and_namespaces():
    plan = layout()
    assert plan["gateway"] == "10.123.0.1"
    assert plan["bridge_netns"] == "plinth-net"
    assert [(h["name"], h["groups"], h["address"], h["netns"]) for h in plan["hosts"]] == [
        ("cp-1", ["control_plane"], "10.123.0.11", "plinth-cp-1"),
        ("gw-1", ["kong_nodes"], "10.123.0.12", "plinth-gw-1"),
        ("worker-1", ["workers"], "10.123.0.13", "plinth-worker-1"),
    ]
    assert len({h["bridge_port"] for h in plan["hosts"]}) == 3


def test_hosts_take_several_groups_and_default_to_workers():
    hosts = network.parse_hosts("ceph-1:ceph_nodes+workers, w-2")
    assert hosts == [{"name": "ceph-1", "groups": ["ceph_nodes", "workers"]},
                     {"name": "w-2", "groups": ["workers"]}]


@pytest.mark.parametrize("spec, message", [
    ("Cp-1:control_plane", "host name 'Cp-1'"),
    ("net:workers", "host name 'net'"),
    ("a:workers,a:kong_nodes", "listed twice"),
    ("a:bad-group", "not a valid Ansible group name"),
    ("", "no hosts given"),
])
def test_bad_host_specs_are_refused(spec, message, capsys):
    with pytest.raises(SystemExit) as exc:
        network.parse_hosts(spec)
    assert message in str(exc.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"subnet": "8.8.8.0/24"}, "use a private IPv4 network"),
    ({"subnet": "10.123.0.0/29"}, "too small"),
    ({"subnet": "not-a-net"}, "--subnet 'not-a-net'"),
    ({"prefix": "Plinth_X"}, "--prefix 'Plinth_X'"),
])
def test_bad_layouts_are_refused(kwargs, message):
    with pytest.raises(SystemExit) as exc:
        layout(**kwargs)
    assert message in str(exc.value)


def test_inventory_groups_hosts_like_the_production_inventory(tmp_path):
    state = common.State(str(tmp_path))
    inventory = yaml.safe_load(commands.inventory_text(state, layout()))
    assert inventory["all"]["vars"] == {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": os.path.join(str(tmp_path), "id_ed25519"),
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    groups = inventory["all"]["children"]["k8s_cluster"]["children"]
    assert set(groups) == {"control_plane", "kong_nodes", "ceph_nodes", "workers"}
    assert groups["ceph_nodes"] == {}
    cp = groups["control_plane"]["hosts"]["cp-1"]
    assert cp["ansible_host"] == "10.123.0.11"
    args = cp["ansible_ssh_common_args"]
    assert "ProxyCommand=ip netns exec plinth-cp-1 " in args
    assert "StrictHostKeyChecking=no" in args and "UserKnownHostsFile=/dev/null" in args


def test_rootfs_key_ignores_order_and_comments(tmp_path):
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text("# why\nsystemd\npython3  # for Ansible\n")
    two.write_text("python3\n\nsystemd\n")
    assert rootfs.read_packages(str(one)) == ["python3", "systemd"]
    assert rootfs.rootfs_key(rootfs.read_packages(str(one))) == \
        rootfs.rootfs_key(rootfs.read_packages(str(two)))
    assert rootfs.rootfs_key(["python3"]) != rootfs.rootfs_key(["python3", "systemd"])


def test_package_list_has_what_a_managed_node_needs():
    packages = set(rootfs.read_packages())
    assert {"systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-apt",
            "sudo", "iproute2", "containerd", "runc", "conntrack", "chrony"} <= packages


def test_debian_mirrors_come_from_the_machine_sources(tmp_path):
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nEnabled: no\nURIs: http://disabled.example/debian\nSuites: bookworm\n")
    vendor = tmp_path / "vendor.list"
    vendor.write_text("deb [arch=amd64] https://vendor.example/apt bookworm main\n")
    assert rootfs.debian_mirrors([str(vendor), str(deb822)]) == (
        "http://mirror.example/debian", "http://mirror.example/debian-security")
    assert rootfs.debian_mirrors([]) == (rootfs.DEFAULT_MIRROR,
                                         rootfs.DEFAULT_SECURITY_MIRROR)


def test_host_files_follow_links_and_copy_parent_modes(tmp_path):
    base, files = tmp_path / "base", tmp_path / "upper"
    (base / "usr" / "lib" / "modules").mkdir(parents=True)
    (base / "lib").symlink_to("usr/lib")
    (base / "root").mkdir(mode=0o700)
    os.chmod(base / "root", 0o700)
    files.mkdir()
    nspawn.host_file(str(files), str(base), "/lib/modules/6.1/modules.builtin", "x\n")
    nspawn.host_file(str(files), str(base), "/root/.ssh/authorized_keys", "key\n", 0o600)
    assert (files / "usr" / "lib" / "modules" / "6.1" / "modules.builtin").read_text() == "x\n"
    assert not (files / "lib").exists()  # the upper layer must not shadow /lib
    assert stat.S_IMODE(os.stat(files / "root").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(files / "root" / ".ssh" / "authorized_keys").st_mode) == 0o600


def test_hosts_boot_in_their_own_namespaces_and_cgroups(tmp_path):
    state = common.State(str(tmp_path))
    host = dict(layout()["hosts"][0], covered_sysctls=["vm/overcommit_memory"],
                cgroups={"memory": ("/cg/memory/plinth-cp-1", "/cg/memory/plinth-cp-1"),
                         "systemd": ("/cg/systemd/plinth-cp-1", "/cg/systemd/plinth-cp-1/payload")})
    command = nspawn.nspawn_command(state, host)
    assert "--network-namespace-path=/run/netns/plinth-cp-1" in command
    assert "--private-network" in command
    assert "--drop-capability=CAP_SYS_TIME" in command
    assert "--bind=/sys/fs/cgroup" not in command  # the machine's own tree: never
    assert any(a.endswith(":/var/lib/containerd") for a in command)
    assert ("--bind-ro=/var/lib/plinth-testhost/sysctl/vm.overcommit_memory:"
            "/proc/sys/vm/overcommit_memory") in command
    script = nspawn.boot_script(state, host)
    assert "mount --bind /cg/systemd/plinth-cp-1/payload " in script
    assert script.splitlines()[-1].startswith("exec systemd-nspawn ")

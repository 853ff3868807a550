"""House rules every role under roles/ keeps (STYLE.md, Roles and Naming)."""

import os
import re
import shlex
import subprocess

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import kubeadm
from ansible_collections.plinth.platform.plugins.module_utils.components import alerts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES_DIR = os.path.join(ROOT, "roles")
ROLES = sorted(name for name in os.listdir(ROLES_DIR) if os.path.isdir(os.path.join(ROLES_DIR, name)))
OS_VARS = ("Debian.yml", "Ubuntu.yml", "RedHat.yml")


def load(role, *parts):
    path = os.path.join(ROLES_DIR, role, *parts)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return yaml.safe_load(handle)


def options(role):
    return load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]


def task_files(role):
    tasks = os.path.join(ROLES_DIR, role, "tasks")
    return sorted(name for name in os.listdir(tasks) if name.endswith(".yml"))


def test_there_are_roles():
    assert ROLES


@pytest.mark.parametrize("role", ROLES)
def test_argument_specs_mirror_the_defaults(role):
    defaults = load(role, "defaults", "main.yml") or {}
    specs = options(role)
    assert sorted(specs) == sorted(defaults), "defaults/main.yml and meta/argument_specs.yml list different variables"
    differing = [name for name in specs if specs[name].get("default") != defaults[name]]
    assert not differing, "argument_specs default differs from defaults/main.yml for %s" % differing


@pytest.mark.parametrize("role", ROLES)
def test_public_variables_carry_the_role_prefix(role):
    wrong = [name for name in options(role) if not name.startswith(role + "_")]
    assert not wrong


@pytest.mark.parametrize("role", ROLES)
def test_readme_documents_every_variable(role):
    with open(os.path.join(ROLES_DIR, role, "README.md")) as handle:
        readme = handle.read()
    missing = [name for name in options(role) if name not in readme]
    assert not missing


@pytest.mark.parametrize("role", ROLES)
def test_included_task_names_carry_their_file(role):
    bad = []
    for name in task_files(role):
        if name == "main.yml":
            continue
        prefix = name[:-len(".yml")] + " | "
        for task in load(role, "tasks", name) or []:
            if not task.get("name", "").startswith(prefix):
                bad.append("%s: %r" % (name, task.get("name")))
    assert not bad


@pytest.mark.parametrize("role", ROLES)
def test_task_names_are_capitalised(role):
    bad = []
    for name in task_files(role):
        for task in load(role, "tasks", name) or []:
            text = task.get("name", "").split(" | ")[-1]
            if not text or not text[0].isupper():
                bad.append("%s: %r" % (name, task.get("name")))
    for handler in load(role, "handlers", "main.yml") or []:
        if not handler.get("name", "")[:1].isupper():
            bad.append("handlers: %r" % handler.get("name"))
    assert not bad


ROLES_WITH_HANDLERS = [role for role in ROLES if load(role, "handlers", "main.yml")]


def test_there_are_handlers_to_check():
    assert ROLES_WITH_HANDLERS


@pytest.mark.parametrize("role", ROLES_WITH_HANDLERS)
def test_handlers_are_reached_through_listen(role):
    handlers = load(role, "handlers", "main.yml")
    wrong = [h.get("name") for h in handlers if not str(h.get("listen", "")).startswith(role + " ")]
    assert not wrong, "handlers without a '%s ...' listen topic" % role


@pytest.mark.parametrize("role", [r for r in ROLES if os.path.isdir(os.path.join(ROLES_DIR, r, "vars"))
                                  and any(os.path.exists(os.path.join(ROLES_DIR, r, "vars", f)) for f in OS_VARS)])
def test_every_supported_os_has_its_variables(role):
    names = [f for f in OS_VARS if load(role, "vars", f) is None]
    assert not names
    keys = [sorted(load(role, "vars", f)) for f in OS_VARS]
    assert keys[0] == keys[1] == keys[2], "the per-OS vars files define different variables"


def test_no_role_names_an_inventory_group():
    group = re.compile(r"groups\[['\"]")
    found = []
    for role in ROLES:
        for base, _, files in os.walk(os.path.join(ROLES_DIR, role, "tasks")):
            for name in files:
                with open(os.path.join(base, name)) as handle:
                    if group.search(handle.read()):
                        found.append(os.path.join(role, name))
    assert not found, "use a <role>_*_group variable instead of a literal group name"


# --- containerd's TOML files, rendered as Ansible renders them (trim_blocks) ---------

def _render(role, template, **variables):
    jinja2 = pytest.importorskip("jinja2")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLES_DIR, role, "templates")),
                             trim_blocks=True, undefined=jinja2.StrictUndefined)
    env.filters["bool"] = bool
    env.filters["to_json"] = lambda value: __import__("json").dumps(value)
    env.filters["quote"] = shlex.quote
    defaults = load(role, "defaults", "main.yml")
    internal = load(role, "vars", "main.yml")
    context = dict(defaults, **{k: v for k, v in internal.items() if "{{" not in str(v)})
    context.update(variables)
    return env.get_template(template).render(**context)


@pytest.mark.parametrize("version,table", [
    (2, ["plugins", "io.containerd.grpc.v1.cri", "containerd", "runtimes", "runc", "options"]),
    (3, ["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc", "options"]),
])
def test_containerd_configuration_is_valid_toml(version, table):
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads(_render("container_runtime", "config-v%d.toml.j2" % version,
                                   container_runtime_restrict_oom_score_adj=True,
                                   __container_runtime_sandbox="registry.k8s.io/pause:3.10.2"))
    assert config["version"] == version
    node = config
    for key in table:
        node = node[key]
    assert node == {"SystemdCgroup": True}
    if version == 2:
        cri = config["plugins"]["io.containerd.grpc.v1.cri"]
        assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.2"
        assert cri["restrict_oom_score_adj"] is True
        assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    else:
        images = config["plugins"]["io.containerd.cri.v1.images"]
        assert images["pinned_images"]["sandbox"] == "registry.k8s.io/pause:3.10.2"
        assert images["registry"]["config_path"] == "/etc/containerd/certs.d"
        assert config["plugins"]["io.containerd.cri.v1.runtime"]["restrict_oom_score_adj"] is True


@pytest.mark.parametrize("registry,settings,server,hosts", [
    ("docker.io", ["https://mirror.example.com"], "https://registry-1.docker.io",
     {"https://mirror.example.com": {"capabilities": ["pull", "resolve"]}}),
    ("registry.k8s.io", {"mirrors": [{"url": "https://m.example.com/v2/k8s", "override_path": True,
                                      "capabilities": ["pull"], "skip_verify": False, "ca": "/etc/ca.pem"}]},
     "https://registry.k8s.io",
     {"https://m.example.com/v2/k8s": {"capabilities": ["pull"], "skip_verify": False, "ca": "/etc/ca.pem",
                                       "override_path": True}}),
    ("_default", {"mirrors": ["https://all.example.com"]}, None,
     {"https://all.example.com": {"capabilities": ["pull", "resolve"]}}),
    ("ghcr.io", {"server": "https://ghcr.example.com", "mirrors": []}, "https://ghcr.example.com", None),
])
def test_registry_hosts_file_is_valid_toml(registry, settings, server, hosts):
    tomllib = pytest.importorskip("tomllib")
    text = _render("container_runtime", "hosts.toml.j2", item={"key": registry, "value": settings})
    parsed = tomllib.loads(text)
    assert parsed.get("server") == server
    assert parsed.get("host") == hosts


@pytest.mark.parametrize("role", ["control_plane", "node_join"])
def test_kubeadm_options_mirror_the_generator(role):
    """Every kubeadm option a role exposes is the generator's, with the generator's default."""
    defaults = load(role, "defaults", "main.yml")
    exposed = load(role, "vars", "main.yml")["__%s_options" % role]
    assert exposed
    assert all(value == "{{ %s_%s }}" % (role, key) for key, value in exposed.items())
    generator = kubeadm.default_options()
    assert set(exposed) <= set(generator)
    for key in exposed:
        expected = "" if generator[key] is None else generator[key]
        assert defaults["%s_%s" % (role, key)] == expected, key
    if role == "control_plane":
        assert set(exposed) == set(generator)


# --- kube-vip's static pod -------------------------------------------------------------

@pytest.mark.parametrize("kubeconfig", ["/etc/kubernetes/super-admin.conf", "/etc/kubernetes/admin.conf"])
def test_kube_vip_static_pod_holds_the_endpoint(kubeconfig):
    text = _render("control_plane", "kube-vip.yaml.j2", ansible_managed="managed",
                   __control_plane_endpoint={"host": "10.0.0.10", "port": 6443},
                   __control_plane_kube_vip_nic="bond0", __control_plane_kube_vip_kubeconfig=kubeconfig)
    pod = yaml.safe_load(text)
    assert (pod["apiVersion"], pod["kind"], pod["metadata"]["namespace"]) == ("v1", "Pod", "kube-system")
    assert pod["spec"]["hostNetwork"] is True
    container = pod["spec"]["containers"][0]
    assert container["image"] == load("control_plane", "defaults", "main.yml")["control_plane_kube_vip_image"]
    env = dict((item["name"], item["value"]) for item in container["env"])
    assert all(isinstance(value, str) for value in env.values())
    assert (env["address"], env["port"], env["vip_interface"]) == ("10.0.0.10", "6443", "bond0")
    assert env["cp_enable"] == env["vip_arp"] == env["vip_leaderelection"] == "true"
    # kube-vip reaches the API on its own host (hostAliases), never through the VIP it provides.
    assert env["kubernetes_addr"] == "kubernetes:6443"
    assert pod["spec"]["hostAliases"] == [{"hostnames": ["kubernetes"], "ip": "127.0.0.1"}]
    assert set(container["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    mount = container["volumeMounts"][0]
    volume = pod["spec"]["volumes"][0]
    assert (mount["name"], mount["mountPath"], mount["readOnly"]) == (volume["name"], "/etc/kubernetes/admin.conf", True)
    assert volume["hostPath"] == {"path": kubeconfig, "type": "File"}


# --- etcd backups ------------------------------------------------------------------------

def test_etcd_backup_reports_what_the_alert_reads(tmp_path):
    """The snapshot command writes the gauge PlinthEtcdBackupMissing reads, where node-exporter reads it."""
    defaults = load("etcd_backup", "defaults", "main.yml")
    assert defaults["etcd_backup_textfile_dir"] == alerts.TEXTFILE_DIRECTORY
    script = _render("etcd_backup", "plinth-etcd-backup.j2", ansible_managed="managed", inventory_hostname="cp-1",
                     etcd_backup_dir="/srv/etcd backups")
    assert "\n%s $(date +%%s)\n" % alerts.ETCD_BACKUP_METRIC in script
    assert "# TYPE %s gauge" % alerts.ETCD_BACKUP_METRIC in script
    assert "backups='/srv/etcd backups'\n" in script and "keep=28\n" in script
    path = tmp_path / "plinth-etcd-backup"
    path.write_text(script)
    checked = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr

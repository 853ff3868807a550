"""The stand-in chart mirror, for real: airgap/chart_mirror.py serves the stand-in charts on
127.0.0.1, helm pulls each pinned name and version from it, and the pulled charts render the
production values files the way the gitops scenario needs (values read back from a ConfigMap,
CRDs too large for client-side apply, Argo CD's settings objects, no object that needs a kubelet)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHARTS = os.path.join(ROOT, "molecule", "gitops", "charts")
from airgap import chart_mirror, launch, processes

ANNOTATION_LIMIT = 262144  # bytes: client-side apply's last-applied-configuration must fit
# What can turn Healthy on an API server without kubelets.
DEFAULT_KINDS = {"ConfigMap", "Secret", "Service", "ServiceAccount", "CustomResourceDefinition"}
TABLE = chart_mirror.load_table(CHARTS)
BY_NAME = dict((entry["name"], entry) for entry in TABLE)


def chart_id(entry):
    return "%s-%s" % (entry["name"], entry["version"])


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The production example tree, rendered as `make demo` renders it."""
    out = str(tmp_path_factory.mktemp("tree"))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                    "-i", "inventories/production", "playbooks/render.yml", "-e", "plinth_render_dir=" + out],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return out


@pytest.fixture(scope="module")
def releases(tree):
    """chart name -> {release, namespace, version, values_file} of each Application's chart source."""
    found = {}
    apps = os.path.join(tree, "clusters", "production", "apps")
    for name in sorted(os.listdir(apps)):
        with open(os.path.join(apps, name), encoding="utf-8") as handle:
            for doc in yaml.safe_load_all(handle):
                if not doc or doc.get("kind") != "Application":
                    continue
                for source in doc["spec"].get("sources") or [doc["spec"].get("source") or {}]:
                    if source.get("chart"):
                        helm = source.get("helm", {})
                        found[source["chart"]] = {
                            "version": source["targetRevision"],
                            "release": helm.get("releaseName", doc["metadata"]["name"]),
                            "namespace": doc["spec"]["destination"]["namespace"],
                            "values_files": [os.path.join(tree, f.replace("$values/", "", 1))
                                             for f in helm.get("valueFiles", [])]}
    return found


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    with chart_mirror.ChartMirror(str(tmp_path_factory.mktemp("mirror"))) as running:
        yield running


@pytest.fixture(scope="module")
def helm(mirror, tmp_path_factory):
    """Run helm with homes of its own and the mirror added as repository `mirror`."""
    homes = tmp_path_factory.mktemp("helm")
    env = dict(os.environ)
    for name in ("CACHE", "CONFIG", "DATA"):
        env["HELM_%s_HOME" % name] = str(homes / name.lower())

    def run(*args):
        result = subprocess.run([mirror.helm] + list(args), env=env, capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, "helm %s: %s" % (" ".join(args[:3]), result.stderr)
        return result.stdout

    run("repo", "add", "mirror", mirror.url)
    return run


@pytest.fixture(scope="module")
def pulled(helm, tmp_path_factory):
    """chart name -> the .tgz that `helm pull` fetched from the mirror at the pinned version."""
    dest = tmp_path_factory.mktemp("pulled")
    found = {}
    for entry in TABLE:
        (dest / entry["name"]).mkdir()
        helm("pull", "mirror/" + entry["name"], "--version", entry["version"],
             "--destination", str(dest / entry["name"]))
        found[entry["name"]] = str(next((dest / entry["name"]).glob("*.tgz")))
    return found


def render(helm, chart, release="rel", namespace="ns", values_files=(), sets=()):
    args = ["template", release, chart, "--namespace", namespace]
    for path in values_files:
        args += ["--values", path]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(helm(*args)) if doc]


def stand_in_crds(docs):
    """The chart's own stand-in CRD(s), not the open-schema APIs it serves for the platform's manifests."""
    return [d for d in docs if d["kind"] == "CustomResourceDefinition"
            and d["spec"]["group"].endswith(".stand-in.plinth.io")]


def kind_crds(docs):
    return sorted("%s/%s" % (d["spec"]["group"], d["spec"]["names"]["kind"]) for d in docs
                  if d["kind"] == "CustomResourceDefinition" and not d["spec"]["group"].endswith(".stand-in.plinth.io"))


def only(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, "%d %s %s in %s" % (len(found), kind, name or "", [d["kind"] for d in docs])
    return found[0]


def merged_values(paths):
    values = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            values.update(yaml.safe_load(handle) or {})  # top-level keys are what this test compares
    return values


def toggled_off(entry, values):
    node = values
    for key in (entry.get("standIn", {}).get("crdToggle") or "").split("."):
        if not key:
            return False
        node = node.get(key) if isinstance(node, dict) else None
    return node is False


# --- the table against the tree ---------------------------------------------------------

def test_table_lists_exactly_the_charts_of_the_production_tree(releases):
    assert sorted((e["name"], e["version"]) for e in TABLE) == \
        sorted((name, r["version"]) for name, r in releases.items())


def test_an_unquoted_version_is_refused(tmp_path):
    shutil.copytree(os.path.join(CHARTS, "stand-in"), tmp_path / "stand-in")
    (tmp_path / "charts.yml").write_text("charts:\n  - {name: demo, version: 1.10}\n", encoding="utf-8")
    with pytest.raises(chart_mirror.MirrorError, match=r"charts\[0\]\.version: 1\.1 is not"):
        chart_mirror.load_table(str(tmp_path))


# --- what the mirror serves -------------------------------------------------------------------

@pytest.mark.parametrize("entry", TABLE, ids=chart_id)
def test_helm_pulls_each_pinned_chart(pulled, helm, entry):
    chart = yaml.safe_load(helm("show", "chart", pulled[entry["name"]]))
    assert (chart["name"], chart["version"]) == (entry["name"], entry["version"])


@pytest.mark.parametrize("entry", TABLE, ids=chart_id)
def test_production_values_render_to_objects_that_need_no_kubelet(pulled, helm, releases, entry):
    release = releases[entry["name"]]
    docs = render(helm, pulled[entry["name"]], release["release"], release["namespace"], release["values_files"])
    assert {d["kind"] for d in docs} <= DEFAULT_KINDS
    config = only(docs, "ConfigMap", release["release"] + "-plinth-values")
    assert config["metadata"]["namespace"] == release["namespace"]
    rendered = yaml.safe_load(config["data"]["values.yaml"])
    expected = merged_values(release["values_files"])
    assert expected and dict((k, rendered.get(k)) for k in expected) == expected
    crds = stand_in_crds(docs)
    crd = entry.get("standIn", {}).get("crd", "none")
    wanted_kinds = sorted("%s/%s" % (k["group"], k["kind"]) for k in entry.get("standIn", {}).get("kinds", []))
    assert kind_crds(docs) == ([] if toggled_off(entry, expected) else wanted_kinds)
    if crd == "none" or toggled_off(entry, expected):
        assert not crds
    else:
        size = len(json.dumps(only(crds, "CustomResourceDefinition"), separators=(",", ":")))
        assert (size > ANNOTATION_LIMIT) == (crd == "large"), size


@pytest.mark.parametrize("entry", [e for e in TABLE if e.get("standIn", {}).get("crd") == "large"], ids=chart_id)
def test_large_crd_exceeds_the_annotation_limit_and_is_tunable(pulled, helm, entry):
    def crd_size(*sets):
        docs = render(helm, pulled[entry["name"]], sets=sets)
        return len(json.dumps(only(stand_in_crds(docs), "CustomResourceDefinition"), separators=(",", ":")))

    assert crd_size() > ANNOTATION_LIMIT
    assert crd_size("standIn.largeCrdBytes=1000") < 4000


def test_crds_follow_the_upstream_switch_and_annotations(pulled, helm, releases):
    docs = render(helm, pulled["external-secrets"], sets=["installCRDs=false"])
    assert not [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert kind_crds(render(helm, pulled["external-secrets"])) == [
        "external-secrets.io/ClusterSecretStore", "external-secrets.io/ExternalSecret",
        "external-secrets.io/SecretStore"]
    docs = render(helm, pulled["kube-prometheus-stack"], sets=["crds.enabled=true"])
    assert only(docs, "CustomResourceDefinition")["spec"]["group"] == "kube-prometheus-stack.stand-in.plinth.io"
    crds = releases["prometheus-operator-crds"]
    docs = render(helm, pulled["prometheus-operator-crds"], values_files=crds["values_files"])
    wanted = merged_values(crds["values_files"])["crds"]["annotations"]
    assert only(stand_in_crds(docs), "CustomResourceDefinition")["metadata"]["annotations"] == wanted


def test_argo_cd_renders_its_settings_from_configs(pulled, helm, releases):
    argocd = releases["argo-cd"]
    configs = merged_values(argocd["values_files"])["configs"]
    docs = render(helm, pulled["argo-cd"], argocd["release"], argocd["namespace"], argocd["values_files"])
    cm = only(docs, "ConfigMap", "argocd-cm")
    assert cm["metadata"]["namespace"] == "argocd"
    assert cm["data"] == configs["cm"]
    assert "resource.customizations.health.argoproj.io_Application" in cm["data"]
    params = only(docs, "ConfigMap", "argocd-cmd-params-cm")
    assert params["data"] == dict((k, str(v).lower() if isinstance(v, bool) else str(v))
                                  for k, v in configs["params"].items())
    only(docs, "ConfigMap", "argocd-rbac-cm")
    only(docs, "Secret", "argocd-secret")
    for name in ("argocd-cm", "argocd-cmd-params-cm", "argocd-rbac-cm", "argocd-secret"):
        labels = [d for d in docs if d["metadata"]["name"] == name][0]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == name and labels["app.kubernetes.io/part-of"] == "argocd"
    group = only(docs, "CustomResourceDefinition")["spec"]["group"]
    assert not group.endswith("argoproj.io")  # the test harness installs Argo CD's own CRDs


@pytest.mark.parametrize("name", ["store-api", "payment-service"])
def test_app_chart_renders_a_cluster_role_or_deployment_only_when_asked(pulled, helm, name):
    assert not [d for d in render(helm, pulled[name]) if d["kind"] in ("ClusterRole", "Deployment")]
    docs = render(helm, pulled[name], sets=["standIn.clusterRole=true"])
    assert only(docs, "ClusterRole")["apiVersion"] == "rbac.authorization.k8s.io/v1"
    deployment = only(render(helm, pulled[name], sets=["standIn.unhealthy=true"]), "Deployment")
    assert deployment["apiVersion"] == "apps/v1"
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True  # admissible in a restricted namespace


# --- the command line --------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run(launch.module_command("airgap.chart_mirror", *args), capture_output=True, text=True, check=False)


def listening(url):
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) == 0


def test_cli_up_is_idempotent_and_down_leaves_no_process(tmp_path):
    directory = str(tmp_path / "mirror")
    started = time.monotonic()
    first = run_cli("up", "--dir", directory)
    up_seconds = time.monotonic() - started
    assert first.returncode == 0, first.stderr
    url = first.stdout.strip()
    process = chart_mirror.ChartMirror(directory).state()["process"]
    try:
        assert url.startswith("http://127.0.0.1:") and up_seconds < 30
        again = run_cli("up", "--dir", directory)
        assert again.returncode == 0 and again.stdout.strip() == url
        assert chart_mirror.ChartMirror(directory).state()["process"]["pid"] == process["pid"]
        status = run_cli("status", "--dir", directory)
        assert status.returncode == 0 and json.loads(status.stdout)["url"] == url
        with urllib.request.urlopen(url + "/index.yaml", timeout=5) as response:
            index = yaml.safe_load(response)
        assert sorted(index["entries"]) == sorted(BY_NAME)
    finally:
        down = run_cli("down", "--dir", directory)
    assert down.returncode == 0, down.stderr
    assert not processes.is_ours(process)
    assert not listening(url)
    assert run_cli("status", "--dir", directory).returncode == 1

"""devtools/acceptance.py against the session's real kube-apiserver, with small charts written here.

Each test has its own Applications, namespaces and CRD group (a prefix), so tests sharing the
API server do not see each other's objects.
"""

import io
import itertools
import os
import tarfile

import pytest
import yaml

from devtools import acceptance

ENV = "test"
PREFIXES = ("acc-%02d" % n for n in itertools.count(1))


class Tree:
    """A rendered GitOps tree and a charts folder holding charts written by the test."""

    def __init__(self, tmp_path, cluster, prefix):
        self.root = tmp_path / "tree"
        self.charts = tmp_path / "charts"
        self.cluster = cluster
        self.prefix = prefix
        (self.root / "clusters" / ENV / "apps").mkdir(parents=True)
        self.charts.mkdir()

    def chart(self, name, templates, version="1.0.0", crds=None):
        folder = self.charts / ("%s-%s" % (name, version))
        (folder / "templates").mkdir(parents=True)
        write_yaml(folder / "Chart.yaml", {"apiVersion": "v2", "name": name, "version": version})
        write_yaml(folder / "values.yaml", {})
        for file_name, text in templates.items():
            (folder / "templates" / file_name).write_text(text)
        if crds:
            (folder / "crds").mkdir()
            for crd in crds:
                write_yaml(folder / "crds" / (crd["metadata"]["name"] + ".yaml"), crd)

    def application(self, name, chart=None, version="1.0.0", values=None, ssa=False, namespace=None,
                    namespace_labels=None, manifests=None):
        """clusters/test/apps/<name>.yaml as the render writes it, with its values file."""
        namespace = namespace or self.namespace(name)
        sources = [{"ref": "values", "repoURL": "git@git.example.com:acme/gitops.git", "targetRevision": "main"}]
        if chart:
            values_path = "infra/%s/values-%s.yaml" % (name, ENV)
            write_yaml(self.root / values_path, values or {})
            sources.insert(0, {"chart": chart, "repoURL": "https://charts.example.com", "targetRevision": version,
                               "helm": {"releaseName": name, "valueFiles": ["$values/" + values_path]}})
        if manifests:
            path = "infra/%s/%s" % (name, ENV)
            for index, doc in enumerate(manifests):
                write_yaml(self.root / path / ("%02d.yaml" % index), doc)
            sources.append({"path": path, "repoURL": "git@git.example.com:acme/gitops.git", "targetRevision": "main"})
        sync = {"syncOptions": ["CreateNamespace=true"] + (["ServerSideApply=true"] if ssa else [])}
        if namespace_labels:
            sync["managedNamespaceMetadata"] = {"labels": namespace_labels}
        write_yaml(self.root / "clusters" / ENV / "apps" / (name + ".yaml"), {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"destination": {"namespace": namespace, "server": "https://kubernetes.default.svc"},
                     "project": "default", "sources": sources, "syncPolicy": sync}})

    def namespace(self, name):
        return "%s-%s" % (self.prefix, name)

    def check(self):
        apps = acceptance.load_apps(str(self.root), ENV)
        results = acceptance.check(apps, str(self.charts), self.cluster.api, self.cluster.version,
                                   acceptance.default_helm())
        return dict((r.app.name, r) for r in results)


def write_yaml(path, data):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", encoding="utf-8") as handle:
        yaml.safe_dump(data, handle)


@pytest.fixture
def tree(cluster, tmp_path):
    return Tree(tmp_path, cluster, next(PREFIXES))


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicas | default 1 }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: app
          image: registry.example.com/app:1.0
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
          {{- with .Values.extra }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
"""

HELM_TEST = """\
apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations: {"helm.sh/hook": test}
spec:
  containers: [{name: t, image: busybox, notAField: true}]
"""


def widget_crd(group, description_bytes=0):
    """A namespaced Widget CRD with spec.size a positive integer; padded with described fields when asked."""
    spec_properties = {"size": {"type": "integer", "minimum": 1}, "colour": {"type": "string"}}
    for index in range(description_bytes // 200 + (1 if description_bytes else 0)):
        spec_properties["field%05d" % index] = {"type": "string", "description": "x" * 180}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets." + group},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {"type": "object", "properties": spec_properties}}}}}]}}


def widget(group, name, size):
    return {"apiVersion": group + "/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}}


def test_valid_deployment_passes_and_helm_test_hooks_are_left_out(tree):
    tree.chart("web", {"deployment.yaml": DEPLOYMENT, "test.yaml": HELM_TEST})
    tree.application("web", chart="web", values={"replicas": 2})
    result = tree.check()["web"]
    assert result.errors == [] and result.missing == []
    assert [obj["kind"] for _, obj in result.objects] == ["Deployment"]
    assert result.objects[0][1]["spec"]["replicas"] == 2


def test_unknown_field_from_the_values_fails_with_the_api_servers_message(tree):
    tree.chart("web", {"deployment.yaml": DEPLOYMENT})
    tree.application("web", chart="web", values={"extra": {"imagePullPolicy": "Always", "bogusField": 1}})
    errors = tree.check()["web"].errors
    assert len(errors) == 1
    assert errors[0].startswith("web: Deployment %s/web: " % tree.namespace("web"))
    assert "bogusField" in errors[0] and "field not declared in schema" in errors[0]


def test_wrong_type_from_the_values_fails(tree):
    tree.chart("web", {"deployment.yaml": DEPLOYMENT})
    tree.application("web", chart="web", values={"replicas": "two"})
    errors = tree.check()["web"].errors
    assert len(errors) == 1 and ".spec.replicas" in errors[0], errors


def test_custom_resource_is_validated_against_the_crd_of_the_render(tree):
    group = tree.prefix + ".example.com"
    tree.chart("operator", {}, crds=[widget_crd(group)])
    tree.application("operator", chart="operator")
    tree.application("widgets", manifests=[widget(group, "good", 3), widget(group, "word", "three"),
                                           widget(group, "zero", 0)])
    results = tree.check()
    assert results["operator"].errors == []
    assert results["operator"].crd_sizes.keys() == {"widgets." + group}
    word, zero = results["widgets"].errors
    assert word.startswith("widgets: Widget %s/word: " % tree.namespace("widgets"))
    assert ".spec.size: expected numeric (int or float), got string" in word
    assert zero.startswith("widgets: Widget %s/zero: " % tree.namespace("widgets"))
    assert "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1" in zero


def test_kind_of_a_group_no_crd_in_the_render_serves_is_unchecked(tree):
    tree.application("pools", manifests=[widget(tree.prefix + ".runtime.example.com", "pool", 1)])
    result = tree.check()["pools"]
    assert result.errors == []
    assert len(result.unchecked) == 1 and "no CRD in the render" in result.unchecked[0]


def test_unknown_version_of_a_built_in_group_is_an_error(tree):
    tree.application("old", manifests=[{"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
                                        "metadata": {"name": "pdb"}, "spec": {"maxUnavailable": 1}}])
    errors = tree.check()["old"].errors
    assert len(errors) == 1 and "serves no kind PodDisruptionBudget in policy/v1beta1" in errors[0]


@pytest.mark.parametrize("ssa", [False, True])
def test_crd_too_large_for_client_side_apply_needs_server_side_apply(tree, ssa):
    group = tree.prefix + ".example.com"
    tree.chart("big", {}, crds=[widget_crd(group, description_bytes=300000)])
    tree.application("big", chart="big", ssa=ssa)
    result = tree.check()["big"]
    assert result.largest_crd > acceptance.ANNOTATION_LIMIT
    if ssa:
        assert result.errors == []
    else:
        assert len(result.errors) == 1 and "needs syncOptions ServerSideApply=true" in result.errors[0]


def test_pod_template_breaking_the_namespace_pod_security_level_fails(tree):
    privileged = DEPLOYMENT.replace("allowPrivilegeEscalation: false", "privileged: true")
    tree.chart("web", {"deployment.yaml": privileged})
    tree.application("web", chart="web", namespace_labels={"pod-security.kubernetes.io/enforce": "restricted"})
    errors = tree.check()["web"].errors
    assert len(errors) == 1 and 'would violate PodSecurity "restricted:latest"' in errors[0], errors


def test_missing_chart_is_reported_and_fails_unless_allowed(tree):
    tree.application("absent", chart="absent", version="9.9.9")
    results = list(tree.check().values())
    assert results[0].missing == ["absent-9.9.9"]
    out = io.StringIO()
    assert acceptance.report(results, out) == 1
    assert out.getvalue().rstrip().endswith("0 releases checked, 0 errors, 0 unchecked objects, 1 charts missing")
    assert acceptance.report(results, io.StringIO(), allow_missing=True) == 0


def test_objects_in_a_namespace_no_application_creates_fail(tree):
    tree.chart("web", {"deployment.yaml": DEPLOYMENT.replace(
        "  name: {{ .Release.Name }}\nspec:", "  name: {{ .Release.Name }}\n  namespace: %s\nspec:"
        % tree.namespace("elsewhere"), 1)})
    tree.application("web", chart="web")
    errors = tree.check()["web"].errors
    assert errors == ["web: namespace %s is created by no Application (CreateNamespace=true) and no Namespace "
                      "object in the render" % tree.namespace("elsewhere")]


def test_find_chart_accepts_folders_and_archives(tmp_path):
    chart = tmp_path / "src" / "demo"
    chart.mkdir(parents=True)
    write_yaml(chart / "Chart.yaml", {"apiVersion": "v2", "name": "demo", "version": "v1.2.3"})
    with tarfile.open(str(tmp_path / "demo-v1.2.3.tgz"), "w:gz") as tar:
        tar.add(str(chart), arcname="demo")
    assert acceptance.find_chart(str(tmp_path), "demo", "v1.2.3") == str(tmp_path / "demo-v1.2.3.tgz")
    assert acceptance.find_chart(str(tmp_path / "src"), "demo", "v1.2.3") == str(chart)
    assert acceptance.find_chart(str(tmp_path / "src"), "demo", "1.2.4") is None

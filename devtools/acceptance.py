#!/usr/bin/env python3
"""Acceptance: every Application's real upstream chart, rendered as Argo CD renders it, checked
by a real kube-apiserver.

    devtools/acceptance.py --charts DIR [--env production] [--skip APP[,APP]] [--allow-missing]
                          [--tree DIR] [--kube-version 1.36.3] [--helm PATH]

    make acceptance CHARTS_DIR=/srv/charts [ENV=staging] [ACCEPTANCE_ARGS="--skip store-api"]

1. The inventory's GitOps tree is rendered into a temporary folder (render.yml), unless
   --tree names one already rendered.
2. Each Application in clusters/<env>/apps/ names a chart and version; the chart is looked up
   in the charts folder as <name>-<version>/, <name>/ (its Chart.yaml must say that name and
   version) or <name>-<version>.tgz, with its dependencies under charts/ as `helm dependency
   build` would leave them. Charts cannot be downloaded here: the folder is the user's
   (an air-gapped mirror, or charts unpacked from their upstream repositories).
3. `helm template` runs with the flags Argo CD's repo-server passes: release name, destination
   namespace, --include-crds, --kube-version of the inventory, --api-versions for every
   group/version (and group/version/Kind) the cluster would serve, that is the test API
   server's own plus those of every CRD and APIService in the whole render, and the
   Application's value files. Raw manifest folders (sources with `path`) are read too.
4. A throwaway kube-apiserver (testbed/testcluster.py) gets every CRD of the render (server-side
   apply) and every namespace; then every object is server-side applied with dryRun=All and
   fieldValidation=Strict. Unknown fields, wrong types and kinds the cluster does not serve
   are errors with the API server's own message; custom resources are checked against the
   render's CRDs. Kinds of a group no CRD in the render serves (CRDs an operator creates at
   run time) are listed as unchecked. Pod templates that break the Pod Security level the
   Application puts on its namespace are errors: their pods would never be created.
   Helm hooks Argo CD never runs (test, pre-delete, ...) are left out, as Argo CD leaves them.
5. A release whose CRD would not fit the 262,144-byte last-applied annotation of client-side
   apply is an error unless its Application syncs with ServerSideApply=true.

Prints a table per Application and the errors verbatim; exits 1 on any error or missing chart
(--allow-missing: missing charts are listed but do not fail). The API server's binaries come
from airgap/build_kubernetes.py's cache (built on first use, about ten minutes).
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import yaml

from airgap.launch import ROOT
from devtools.apiserver import (
    SYSTEM_NAMESPACES, Discovery, api_message, apply, create_namespaces, discover, group_of,
    install_crds)
from testbed import testcluster

ANNOTATION_LIMIT = 262144  # bytes of all annotations together; last-applied holds the whole object

# Helm hook types Argo CD maps to sync phases; any other Helm hook is never applied by it.
ARGO_HELM_HOOKS = ("pre-install", "pre-upgrade", "post-install", "post-upgrade")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"


class Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML 1.1 as PyYAML reads it, except that a bare `=` is the string Go's YAML reads."""


Loader.add_constructor("tag:yaml.org,2002:value", Loader.construct_yaml_str)


def load_all(stream):
    return yaml.load_all(stream, Loader=Loader)


# --- the rendered tree ------------------------------------------------------------

class Source:
    """One chart source of an Application."""

    def __init__(self, chart, version, release, value_files, inline_values=None):
        self.chart = chart
        self.version = version
        self.release = release
        self.value_files = value_files
        self.inline_values = inline_values

    @property
    def label(self):
        return "%s-%s" % (self.chart, self.version)


class App:
    """What one Argo CD Application deploys, as this check needs it."""

    def __init__(self, name, namespace, charts, manifest_dirs, sync_options, namespace_labels):
        self.name = name
        self.namespace = namespace
        self.charts = charts
        self.manifest_dirs = manifest_dirs
        self.server_side_apply = "ServerSideApply=true" in sync_options
        self.create_namespace = "CreateNamespace=true" in sync_options
        self.namespace_labels = namespace_labels


def render_tree(env, dest):
    """The inventory's GitOps tree, written into dest by render.yml."""
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
               "-i", os.path.join("inventories", env), "playbooks/render.yml",
               "-e", "plinth_render_dir=" + dest]
    environ = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    result = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit("render failed:\n%s%s" % (result.stdout[-3000:], result.stderr[-2000:]))


def inventory_kube_version(env):
    """plinth_kubernetes_version as the inventory gives it to localhost (where render.yml runs)."""
    command = [os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost",
               "-i", os.path.join("inventories", env), "-m", "ansible.builtin.debug",
               "-a", "var=plinth_kubernetes_version"]
    environ = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    output = subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True).stdout
    version = json.loads(output.partition("=>")[2] or "{}").get("plinth_kubernetes_version")
    if not version or not str(version).lstrip("v")[:1].isdigit():  # undefined: a message instead
        raise SystemExit("inventories/%s sets no plinth_kubernetes_version (or pass --kube-version)" % env)
    return str(version).lstrip("v")


def load_apps(tree, env):
    """Every child Application of clusters/<env>/apps/, in file order."""
    apps = []
    folder = os.path.join(tree, "clusters", env, "apps")
    for name in sorted(os.listdir(folder)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(folder, name), encoding="utf-8") as handle:
                apps.extend(parse_app(tree, doc) for doc in load_all(handle)
                            if doc and doc.get("kind") == "Application")
    return apps


def parse_app(tree, doc):
    spec = doc["spec"]
    sources = spec.get("sources") or [spec["source"]]
    refs = dict(("$" + s["ref"], tree) for s in sources if s.get("ref"))
    charts, manifest_dirs = [], []
    for source in sources:
        if source.get("chart"):
            charts.append(chart_source(doc["metadata"]["name"], source, refs))
        elif source.get("path") is not None:
            recurse = bool((source.get("directory") or {}).get("recurse"))
            manifest_dirs.append((os.path.join(tree, source["path"]), recurse))
    sync = spec.get("syncPolicy") or {}
    labels = ((sync.get("managedNamespaceMetadata") or {}).get("labels")) or {}
    return App(doc["metadata"]["name"], spec["destination"].get("namespace") or "default",
               charts, manifest_dirs, sync.get("syncOptions") or [], labels)


def chart_source(app_name, source, refs):
    helm = source.get("helm") or {}
    value_files = []
    for path in helm.get("valueFiles") or []:
        ref, _, rest = path.partition("/")
        value_files.append(os.path.join(refs[ref], rest) if ref in refs else path)
    inline = helm.get("valuesObject") or (yaml.safe_load(helm["values"]) if helm.get("values") else None)
    return Source(source["chart"], str(source["targetRevision"]), helm.get("releaseName") or app_name,
                  value_files, inline)


def load_manifests(folder, recurse):
    """The documents Argo CD would apply from a directory source."""
    paths = []
    for top, dirs, files in os.walk(folder):
        paths.extend(os.path.join(top, f) for f in sorted(files) if f.endswith((".yaml", ".yml", ".json")))
        if not recurse:
            break
    objects = []
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            objects.extend(flatten(load_all(handle)))
    return objects


def flatten(documents):
    objects = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            objects.extend(flatten(doc["items"]))
        elif isinstance(doc, dict) and doc:
            objects.append(doc)
    return objects


# --- charts -------------------------------------------------------------------------

def same_version(a, b):
    return str(a).lstrip("v") == str(b).lstrip("v")


def find_chart(charts_dir, name, version):
    """A chart folder or archive in charts_dir holding chart `name` at `version`, or None."""
    for folder in (os.path.join(charts_dir, "%s-%s" % (name, version)), os.path.join(charts_dir, name)):
        meta = read_yaml(os.path.join(folder, "Chart.yaml"))
        if meta and meta.get("name") == name and same_version(meta.get("version"), version):
            return folder
    for archive in (os.path.join(charts_dir, "%s-%s.tgz" % (name, version)),
                    os.path.join(charts_dir, "%s-%s.tgz" % (name, str(version).lstrip("v")))):
        if os.path.isfile(archive) and archive_chart_version(archive, name) is not None:
            if same_version(archive_chart_version(archive, name), version):
                return archive
    return None


def read_yaml(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError:
        return None


def archive_chart_version(archive, name):
    with tarfile.open(archive) as tar:
        try:
            member = tar.extractfile(name + "/Chart.yaml")
        except KeyError:
            return None
        return (yaml.safe_load(member) or {}).get("version") if member else None


def helm_template(helm, source, chart_path, namespace, kube_version, api_versions):
    """The objects `helm template` renders, as Argo CD's repo-server runs it."""
    command = [helm, "template", source.release, chart_path, "--namespace", namespace,
               "--include-crds", "--kube-version", "v" + kube_version]
    for version in api_versions:
        command += ["--api-versions", version]
    for path in source.value_files:
        command += ["--values", path]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as inline:
        if source.inline_values:
            yaml.safe_dump(source.inline_values, inline)
            inline.flush()
            command += ["--values", inline.name]
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RenderError(result.stderr.strip())
    return flatten(load_all(result.stdout))


class RenderError(Exception):
    pass


def applied_by_argo_cd(obj):
    """False for Helm hooks Argo CD never runs (test, pre-delete, ...) and Skip hooks."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    argo_hooks = csv(annotations.get("argocd.argoproj.io/hook"))
    if argo_hooks:
        return argo_hooks != ["Skip"]
    helm_hooks = csv(annotations.get("helm.sh/hook"))
    if not helm_hooks or helm_hooks == ["crd-install"]:
        return True
    return any(hook in ARGO_HELM_HOOKS for hook in helm_hooks)


def csv(value):
    return [part.strip() for part in str(value or "").split(",") if part.strip()]


def is_crd(obj):
    return (obj.get("kind") == "CustomResourceDefinition"
            and obj.get("apiVersion", "").startswith("apiextensions.k8s.io/"))


def crd_api_versions(objects):
    """group/version and group/version/Kind of every CRD and APIService among objects."""
    versions = set()
    for obj in objects:
        spec = obj.get("spec") or {}
        if is_crd(obj):
            for version in spec.get("versions") or []:
                if version.get("served", True):
                    group_version = "%s/%s" % (spec["group"], version["name"])
                    versions.update((group_version, group_version + "/" + spec["names"]["kind"]))
        elif obj.get("kind") == "APIService" and spec.get("group"):
            versions.add("%s/%s" % (spec["group"], spec["version"]))
    return versions


def compact_size(obj):
    """Bytes of the object as client-side apply stores it in its last-applied annotation."""
    return len(json.dumps(obj, separators=(",", ":")))


# --- the check -----------------------------------------------------------------------

class Result:
    """One Application's outcome."""

    def __init__(self, app):
        self.app = app
        self.objects = []          # (source label, object)
        self.missing = []          # chart labels not found
        self.render_errors = []    # helm template failures, manifest folders not found
        self.check_errors = []     # what the API server and the size check found
        self.unchecked = []
        self.warnings = []
        self.crd_sizes = {}

    @property
    def errors(self):
        return self.render_errors + self.check_errors

    @staticmethod
    def all_objects(results):
        return [obj for result in results for _, obj in result.objects]

    @property
    def largest_crd(self):
        return max(self.crd_sizes.values()) if self.crd_sizes else 0

    def error(self, obj, message):
        self.check_errors.append("%s: %s: %s" % (self.app.name, describe(obj), message) if obj else
                                 "%s: %s" % (self.app.name, message))


def describe(obj):
    meta = obj.get("metadata", {})
    name = meta.get("name") or meta.get("generateName", "") + "*"
    return "%s %s" % (obj.get("kind"), meta["namespace"] + "/" + name if meta.get("namespace") else name)


def check(apps, charts_dir, api, kube_version, helm="helm", skip=()):
    """Render, install CRDs and namespaces, validate: one Result per Application not skipped."""
    results = [Result(app) for app in apps if app.name not in skip]
    base = Discovery(api).api_versions()
    # The first pass finds the CRDs the render ships; the second renders as on a cluster serving them.
    render_all(results, charts_dir, helm, kube_version, base)
    render_all(results, charts_dir, helm, kube_version, base | crd_api_versions(Result.all_objects(results)))
    crds = collect_crds(results)
    for result in results:
        check_crd_sizes(result)
    failed = install_crds(api, crds)
    served = discover(api, crd_kinds(crds, failed))
    for result in results:
        place_in_namespace(result, served)
    namespaces = namespace_labels(results)
    create_namespaces(api, namespaces)
    render_groups = set(crd["spec"]["group"] for crd in crds.values())
    for result in results:
        validate(result, api, served, render_groups, failed, namespaces)
    check_namespaces_created(results)
    return results


def crd_kinds(crds, failed):
    """(apiVersion, kind) of every served version of the CRDs that were Established."""
    return [(group_version, kind) for name, crd in crds.items() if name not in failed
            for group_version, _, kind in (v.rpartition("/") for v in crd_api_versions([crd])
                                           if v.count("/") == 2)]


def render_all(results, charts_dir, helm, kube_version, api_versions):
    for result in results:
        result.objects, result.missing, result.render_errors = [], [], []
        for source in result.app.charts:
            chart_path = find_chart(charts_dir, source.chart, source.version)
            if chart_path is None:
                result.missing.append(source.label)
                continue
            try:
                objects = helm_template(helm, source, chart_path, result.app.namespace, kube_version,
                                        sorted(api_versions))
            except RenderError as error:
                result.render_errors.append("%s: helm template %s: %s" % (result.app.name, source.label, error))
                continue
            result.objects.extend((source.label, o) for o in objects if applied_by_argo_cd(o))
        for folder, recurse in result.app.manifest_dirs:
            if not os.path.isdir(folder):
                result.render_errors.append("%s: manifest folder %s is not in the rendered tree"
                                            % (result.app.name, folder))
                continue
            result.objects.extend((os.path.basename(folder), o) for o in load_manifests(folder, recurse))


def place_in_namespace(result, served):
    """Namespaced objects without a namespace land in the destination namespace (Argo CD does so);
    cluster-scoped ones lose theirs (kubectl does so)."""
    for _, obj in result.objects:
        meta = obj.setdefault("metadata", {})
        known = served.resources.get((obj.get("apiVersion"), obj.get("kind")))
        if is_crd(obj) or (known and not known[1]):
            meta.pop("namespace", None)
        elif not meta.get("namespace"):
            meta["namespace"] = result.app.namespace


def collect_crds(results):
    """name -> CRD over the whole render; the same CRD from two Applications is a warning."""
    crds, owner = {}, {}
    for result in results:
        for _, obj in result.objects:
            if is_crd(obj):
                name = obj["metadata"]["name"]
                if name in owner and owner[name] != result.app.name:
                    result.warnings.append("%s: CustomResourceDefinition %s is also rendered by %s" % (
                        result.app.name, name, owner[name]))
                crds[name], owner[name] = obj, result.app.name
    return crds


def check_crd_sizes(result):
    for _, obj in result.objects:
        if is_crd(obj):
            result.crd_sizes[obj["metadata"]["name"]] = compact_size(obj)
    if result.app.server_side_apply:
        return
    for name, size in sorted(result.crd_sizes.items()):
        if size > ANNOTATION_LIMIT:
            result.error(None, "CustomResourceDefinition %s is %d bytes: client-side apply cannot store it in "
                               "its last-applied annotation (limit %d); the Application needs "
                               "syncOptions ServerSideApply=true" % (name, size, ANNOTATION_LIMIT))


def namespace_labels(results):
    """Every namespace the render writes into, with the labels Argo CD or the render gives it."""
    labels = collections.defaultdict(dict)
    for result in results:
        if result.app.create_namespace:
            labels[result.app.namespace].update(result.app.namespace_labels)
        for _, obj in result.objects:
            if obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1":
                labels[obj["metadata"]["name"]].update(obj["metadata"].get("labels") or {})
            elif obj["metadata"].get("namespace"):
                labels[obj["metadata"]["namespace"]]
    return labels


def validate(result, api, served, render_groups, failed_crds, namespaces):
    for _, obj in result.objects:
        if is_crd(obj):
            if obj["metadata"]["name"] in failed_crds:
                result.error(obj, failed_crds[obj["metadata"]["name"]])
            continue
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key not in served.resources:
            if group_of(key[0] or "") in served.groups | render_groups:
                result.error(obj, "the API server serves no kind %s in %s" % key[::-1])
            else:
                result.unchecked.append("%s: %s (%s): no CRD in the render" % (result.app.name, describe(obj), key[0]))
            continue
        namespace = obj["metadata"].get("namespace")
        try:
            warnings = apply(api, served.path(obj, namespace), obj, dry_run=True)
        except testcluster.ApiError as error:
            result.error(obj, api_message(error))
            continue
        enforce = namespaces.get(namespace, {}).get(ENFORCE_LABEL) if namespace else None
        for warning in warnings:
            if enforce and warning.startswith('would violate PodSecurity "%s:' % enforce):
                result.error(obj, warning + " (namespace %s enforces %s)" % (namespace, enforce))
            else:
                result.warnings.append("%s: %s: %s" % (result.app.name, describe(obj), warning))


def check_namespaces_created(results):
    """Objects in a namespace that no Application creates fail to sync."""
    created = set(SYSTEM_NAMESPACES)
    for result in results:
        if result.app.create_namespace:
            created.add(result.app.namespace)
        created.update(o["metadata"]["name"] for _, o in result.objects if o.get("kind") == "Namespace")
    for result in results:
        for namespace in sorted(set(o["metadata"].get("namespace") for _, o in result.objects) - created - {None}):
            result.error(None, "namespace %s is created by no Application (CreateNamespace=true) and no "
                               "Namespace object in the render" % namespace)


# --- report -------------------------------------------------------------------------

def report(results, out=sys.stdout, allow_missing=False):
    """Prints the table and the findings; returns the exit code."""
    rows = [("application", "chart", "objects", "CRDs", "largest CRD", "SSA", "errors", "unchecked")]
    for r in results:
        charts = ",".join(s.label for s in r.app.charts) or "(manifests)"
        rows.append((r.app.name, charts + (" MISSING" if r.missing else ""), str(len(r.objects)),
                     str(len(r.crd_sizes)), str(r.largest_crd), "yes" if r.app.server_side_apply else "no",
                     str(len(r.errors)), str(len(r.unchecked))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))),
              file=out)
    sections = (("errors", [e for r in results for e in r.errors]),
                ("unchecked: no CRD in the render", [u for r in results for u in r.unchecked]),
                ("warnings", [w for r in results for w in r.warnings]),
                ("charts missing", ["%s: %s" % (r.app.name, m) for r in results for m in r.missing]))
    for title, lines in sections:
        if lines:
            print("\n%s:" % title, file=out)
            for line in lines:
                print("  " + line.replace("\n", "\n      "), file=out)
    errors = sum(len(r.errors) for r in results)
    missing = sum(len(r.missing) for r in results)
    checked = sum(1 for r in results if not r.missing)
    print("\n%d releases checked, %d errors, %d unchecked objects, %d charts missing" % (
        checked, errors, sum(len(r.unchecked) for r in results), missing), file=out)
    return 1 if errors or (missing and not allow_missing) else 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", required=True, help="folder of unpacked charts or .tgz archives")
    parser.add_argument("--env", default="production", help="inventory under inventories/ (default production)")
    parser.add_argument("--tree", help="an already rendered GitOps tree (default: render one)")
    parser.add_argument("--kube-version", help="default: the inventory's plinth_kubernetes_version")
    parser.add_argument("--helm", default=default_helm())
    parser.add_argument("--skip", default="", help="comma-separated Application names to leave out")
    parser.add_argument("--allow-missing", action="store_true", help="missing charts do not fail the run")
    return parser.parse_args(argv)


def default_helm():
    beside = os.path.join(os.path.dirname(sys.executable), "helm")
    return beside if os.access(beside, os.X_OK) else (shutil.which("helm") or "helm")


def main(argv=None):
    args = parse_args(argv)
    started = time.monotonic()
    kube_version = (args.kube_version or inventory_kube_version(args.env)).lstrip("v")
    with tempfile.TemporaryDirectory(prefix="plinth-acceptance-") as work:
        tree = args.tree or os.path.join(work, "tree")
        if not args.tree:
            render_tree(args.env, tree)
        apps = load_apps(tree, args.env)
        with testcluster.TestCluster(os.path.join(work, "cluster"), version=kube_version) as cluster:
            results = check(apps, os.path.abspath(args.charts), cluster.api, kube_version, args.helm,
                            skip=set(csv(args.skip)))
    code = report(results, allow_missing=args.allow_missing)
    print("(%s, Kubernetes %s, %.0fs)" % (args.env, kube_version, time.monotonic() - started))
    return code


if __name__ == "__main__":
    sys.exit(main())

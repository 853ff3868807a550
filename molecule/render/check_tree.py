"""Check a rendered GitOps tree the way a cluster and a reviewer would.

    python check_tree.py TREE --inventories DIR [--ansible-inventory PATH]

For every environment rendered into TREE (one ``.plinth-generated-<env>``
list per environment, written by plinth.platform.gitops_tree):

- every file it lists exists, is UTF-8 and parses as YAML, except the environment's picture
  (``clusters/<env>/README.md``), which is Markdown whose Mermaid blocks are closed; no other
  file is there;
- Helm values files (``values-<env>.yaml``) hold one mapping;
- every other document is a Kubernetes object. Objects of the built-in API
  groups (v1, apps/v1, networking.k8s.io/v1, policy/v1, ...) must validate
  against the OpenAPI schema of the environment's Kubernetes minor (strict:
  unknown fields are errors), read from ``plinth_kubernetes_version`` in its
  inventory. Custom resources need apiVersion, kind and metadata.name; Argo CD
  Applications and AppProjects are checked for the fields Argo CD requires;
- nothing looks like a secret: no Secret carries data, no key such as
  ``password`` or ``token`` holds a literal string, and no value looks like
  a private key or a well-known token format.

Prints every problem found and exits 1 if there is any.
"""

import argparse
import json
import os
import subprocess
import sys

import kubernetes_validate
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import secrets

MANIFEST_PREFIX = ".plinth-generated-"

# API groups served by kube-apiserver itself: their schemas ship with kubernetes_validate.
BUILTIN_GROUPS = {"", "apps", "autoscaling", "batch", "policy"}

class Report:
    def __init__(self):
        self.problems = []
        self.counts = {"files": 0, "validated": 0, "custom": 0, "values": 0}

    def add(self, path, message):
        self.problems.append("%s: %s" % (path, message))


def minor(version):
    return ".".join(str(version).lstrip("v").split(".")[:2])


def kubernetes_version(ansible_inventory, inventory):
    """plinth_kubernetes_version of an inventory, as Ansible resolves it."""
    out = subprocess.check_output([ansible_inventory, "-i", inventory, "--list"])
    hostvars = json.loads(out)["_meta"]["hostvars"]
    versions = set(str(v["plinth_kubernetes_version"]) for v in hostvars.values()
                   if "plinth_kubernetes_version" in v)
    if len(versions) != 1:
        raise SystemExit("%s: expected one plinth_kubernetes_version, found %s" % (inventory, sorted(versions)))
    return versions.pop()


def environments(tree):
    """env -> files its manifest lists."""
    found = {}
    for name in sorted(os.listdir(tree)):
        if name.startswith(MANIFEST_PREFIX):
            with open(os.path.join(tree, name)) as handle:
                found[name[len(MANIFEST_PREFIX):]] = [
                    line for line in handle.read().splitlines() if line and not line.startswith("#")]
    return found


def all_files(tree):
    for folder, _dirs, names in os.walk(tree):
        for name in names:
            relpath = os.path.relpath(os.path.join(folder, name), tree)
            if not relpath.startswith(MANIFEST_PREFIX):
                yield relpath


def group_of(api_version):
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def is_builtin(api_version):
    group = group_of(api_version)
    return group in BUILTIN_GROUPS or group.endswith(".k8s.io")


def check_object(report, where, doc, version):
    for field in ("apiVersion", "kind"):
        if not isinstance(doc.get(field), str) or not doc.get(field):
            report.add(where, "not a Kubernetes object: %s missing" % field)
            return
    if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
        report.add(where, "%s has no metadata.name" % doc["kind"])
        return
    where = "%s (%s %s)" % (where, doc["kind"], doc["metadata"]["name"])
    if is_builtin(doc["apiVersion"]):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            report.counts["validated"] += 1
        except kubernetes_validate.SchemaNotFoundError:
            report.add(where, "no Kubernetes %s schema for %s %s" % (minor(version), doc["apiVersion"], doc["kind"]))
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "(top)"
            report.add(where, "invalid for Kubernetes %s at %s: %s" % (minor(version), path, exc.message))
    else:
        report.counts["custom"] += 1
        if doc["apiVersion"].startswith("argoproj.io/"):
            check_argocd(report, where, doc)
    if doc["kind"] == "Secret" and (doc.get("data") or doc.get("stringData")):
        report.add(where, "a Secret with data in the GitOps tree: secrets must come from Vault through ExternalSecrets")


def check_argocd(report, where, doc):
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        report.add(where, "spec missing")
        return
    if doc["kind"] == "Application":
        if not spec.get("project"):
            report.add(where, "spec.project missing")
        destination = spec.get("destination") or {}
        if not (destination.get("server") or destination.get("name")):
            report.add(where, "spec.destination needs server or name")
        sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
        if not sources:
            report.add(where, "spec.source or spec.sources missing")
        for index, source in enumerate(sources):
            if not source.get("repoURL"):
                report.add(where, "source %d has no repoURL" % index)
            if not (source.get("chart") or "path" in source or source.get("ref")):
                report.add(where, "source %d needs chart, path or ref" % index)
            if source.get("chart") and not source.get("targetRevision"):
                report.add(where, "source %d: chart %s without targetRevision" % (index, source["chart"]))
    elif doc["kind"] == "AppProject":
        for field in ("sourceRepos", "destinations"):
            if not isinstance(spec.get(field), list) or not spec[field]:
                report.add(where, "spec.%s must be a non-empty list" % field)


def check_secrets(report, where, doc):
    """The collection's one secret detector, as the writer and gitops_commit use it."""
    for path, rule in secrets.findings(doc):
        report.add(where, "%s: %s (secrets must come from Vault through ExternalSecrets)" % (path or "(document)", rule))


def check_readme(report, full, relpath):
    """The environment's picture: Markdown whose ```mermaid blocks are all closed."""
    try:
        with open(full, "rb") as handle:
            lines = handle.read().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        report.add(relpath, "is not a readable UTF-8 file: %s" % exc)
        return
    fences = [line.strip() for line in lines if line.strip().startswith("```")]
    if fences.count("```mermaid") == 0:
        report.add(relpath, "holds no Mermaid diagram")
    if len(fences) % 2 or any(opening != "```mermaid" or closing != "```"
                              for opening, closing in zip(fences[::2], fences[1::2])):
        report.add(relpath, "has a code block that is not a closed ```mermaid block: %s" % fences)


def check_file(report, tree, relpath, env, version):
    full = os.path.join(tree, relpath)
    report.counts["files"] += 1
    if relpath == "clusters/%s/README.md" % env:
        check_readme(report, full, relpath)
        return
    try:
        with open(full, "rb") as handle:
            docs = [doc for doc in yaml.safe_load_all(handle.read().decode("utf-8")) if doc is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        report.add(relpath, "does not parse as YAML: %s" % exc)
        return
    if not docs:
        report.add(relpath, "holds no YAML document")
    if os.path.basename(relpath) == "values-%s.yaml" % env:
        report.counts["values"] += 1
        if len(docs) != 1 or not isinstance(docs[0], dict):
            report.add(relpath, "Helm values must be one mapping")
    else:
        for index, doc in enumerate(docs):
            where = "%s[%d]" % (relpath, index) if len(docs) > 1 else relpath
            if not isinstance(doc, dict):
                report.add(where, "not a Kubernetes object: %s" % type(doc).__name__)
                continue
            check_object(report, where, doc, version)
    for index, doc in enumerate(docs):
        check_secrets(report, "%s[%d]" % (relpath, index) if len(docs) > 1 else relpath, doc)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("tree")
    parser.add_argument("--inventories", required=True, help="folder of the example inventories, one per environment")
    parser.add_argument("--ansible-inventory", default="ansible-inventory")
    parser.add_argument("--expect", action="append", default=[], help="an environment that must have been rendered")
    args = parser.parse_args(argv)

    report = Report()
    envs = environments(args.tree)
    for env in args.expect:
        if env not in envs:
            report.add(args.tree, "environment %r was not rendered (no %s%s)" % (env, MANIFEST_PREFIX, env))
    listed = set()
    for env, files in sorted(envs.items()):
        version = kubernetes_version(args.ansible_inventory, os.path.join(args.inventories, env))
        print("%s: %d files, Kubernetes %s" % (env, len(files), version))
        if not files:
            report.add(MANIFEST_PREFIX + env, "lists no file")
        for relpath in files:
            listed.add(relpath)
            check_file(report, args.tree, relpath, env, version)
    for relpath in sorted(set(all_files(args.tree)) - listed):
        report.add(relpath, "in the tree but in no environment's list of generated files")

    print("checked %(files)d files: %(validated)d objects validated against the Kubernetes schema, "
          "%(custom)d custom resources, %(values)d Helm values files" % report.counts)
    for problem in report.problems:
        print("PROBLEM " + problem)
    print("%d problem%s" % (len(report.problems), "" if len(report.problems) == 1 else "s"))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())

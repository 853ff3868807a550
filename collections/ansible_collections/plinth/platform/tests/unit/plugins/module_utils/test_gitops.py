# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The GitOps tree: golden files per example environment, and its invariants."""

from __future__ import absolute_import, annotations, division, print_function

import os
import re

import pytest
import yaml

from ansible_collections.plinth.platform.plugins.module_utils import gitops, secrets
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.conftest import (
    HERE, digest_in_fresh_process, files_under, load_inventory, rewrite_golden_files, sha256_of)

__metaclass__ = type

GOLDEN = os.path.join(HERE, "golden")
UPDATE = os.environ.get("PLINTH_UPDATE_GOLDEN") == "1"


def render(env):
    return gitops.render(build_spec(*load_inventory(env)))


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d is not None]


def test_tree_matches_golden_files(example_env):
    """Inventory in -> tree out; regenerate with PLINTH_UPDATE_GOLDEN=1 after a deliberate change."""
    files = render(example_env)
    root = os.path.join(GOLDEN, example_env)
    if UPDATE:
        rewrite_golden_files(root, files)
    assert sorted(files_under(root)) == sorted(files), "golden file set differs: PLINTH_UPDATE_GOLDEN=1 to refresh"
    for path, content in files.items():
        with open(os.path.join(root, path)) as handle:
            assert handle.read() == content, path


def test_render_is_deterministic(example_env):
    """The same tree in this process and in two others that hash strings differently."""
    here = sha256_of(render(example_env))
    assert sha256_of(render(example_env)) == here
    module = "ansible_collections.plinth.platform.tests.unit.plugins.module_utils.test_gitops"
    elsewhere = [digest_in_fresh_process(module, "render", seed, example_env) for seed in (1, 2)]
    assert elsewhere == [here, here]


def yaml_files(files):
    """The tree's YAML files: everything but the environment's generated README."""
    return dict((path, text) for path, text in files.items() if path.endswith(".yaml"))


def applications(files):
    found = {}
    for path, text in yaml_files(files).items():
        for doc in docs(text):
            if doc.get("kind") == "Application":
                found[path] = doc
    return found


def test_every_application_points_at_files_in_the_tree(example_env):
    files = render(example_env)
    for path, app in applications(files).items():
        for source in app["spec"].get("sources", []):
            for value_file in source.get("helm", {}).get("valueFiles", []):
                assert value_file.startswith("$values/")
                assert value_file[len("$values/"):] in files, (path, value_file)
            if "path" in source and "chart" not in source:
                assert any(f.startswith(source["path"] + "/") for f in files), (path, source["path"])
        if "source" in app["spec"]:
            assert any(f.startswith(app["spec"]["source"]["path"] + "/") for f in files)


def test_charts_are_pinned_and_sync_is_automated(example_env):
    for path, app in applications(render(example_env)).items():
        for source in app["spec"].get("sources", []):
            if "chart" in source:
                assert re.match(r"^v?\d+\.\d+\.\d+", source["targetRevision"]), path
        policy = app["spec"]["syncPolicy"]["automated"]
        assert policy == {"prune": True, "selfHeal": True}


def wave(app):
    return int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])


def test_argocd_documents_are_what_the_render_writes_to_those_files(example_env):
    spec = build_spec(*load_inventory(example_env))
    written = render(example_env)
    documents = gitops.argocd_documents(spec)
    assert sorted(documents) == sorted(path for path in yaml_files(written) if path.startswith("clusters/"))
    for path, found in documents.items():
        assert found == docs(written[path]), path


def test_argocd_documents_build_no_helm_values(example_env, monkeypatch):
    spec = build_spec(*load_inventory(example_env))
    expected = gitops.argocd_documents(spec)

    def refuse(*_args):
        raise AssertionError("Helm values were built")
    monkeypatch.setattr(gitops.app_values, "values", refuse)
    for _component, release, _settings in gitops.releases(spec):
        if release.values is not None:
            monkeypatch.setattr(release, "values", refuse)
    assert gitops.argocd_documents(spec) == expected
    assert gitops.sync_waves(spec)


def test_sync_waves_follow_dependencies(example_env):
    """Storage and CRD operators, then Consul -> Vault -> ESO, then gateway, monitoring, tunnel, apps."""
    by_name = dict((app["metadata"]["name"], wave(app))
                   for path, app in applications(render(example_env)).items() if "annotations" in app["metadata"])
    chain = ["rook-ceph", "rook-ceph-cluster", "consul", "vault", "external-secrets", "kong", "cloudflared",
             "store-api"]
    assert [by_name[n] for n in chain] == sorted(by_name[n] for n in chain)
    assert by_name["consul"] < by_name["vault"] < by_name["external-secrets"] < by_name["kong"]
    assert by_name["prometheus-operator-crds"] < by_name["rook-ceph-cluster"]
    assert by_name["external-secrets"] < by_name["kube-prometheus-stack"] < by_name["cloudflared"]
    assert by_name["cloudnative-pg"] < by_name["kong"]


def test_projects_grant_least_privilege(example_env):
    files = render(example_env)
    projects = dict((d["metadata"]["name"], d) for d in docs(files["clusters/%s/projects.yaml" % example_env]))
    assert sorted(projects) == ["business", "infra", "platform", "root"]
    business = projects["business"]["spec"]
    assert business["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]
    assert {"group": "*", "kind": "*"} not in business["namespaceResourceWhitelist"]
    assert sorted(d["namespace"] for d in business["destinations"]) == ["payments", "store"]
    root = projects["root"]["spec"]
    assert root["clusterResourceWhitelist"] == []
    # AppProjects are applied by the gitops stage, never synced: a push cannot widen them.
    assert root["namespaceResourceWhitelist"] == [{"group": "argoproj.io", "kind": "Application"}]
    assert not [p for p in files if p.startswith("clusters/%s/apps/" % example_env) and "AppProject" in files[p]]
    assert [d["namespace"] for d in root["destinations"]] == ["argocd"]
    for name, project in projects.items():
        assert "*" not in project["spec"]["sourceRepos"], name
    for path, app in applications(files).items():
        dest = app["spec"]["destination"]["namespace"]
        allowed = [d["namespace"] for d in projects[app["spec"]["project"]]["spec"]["destinations"]]
        assert dest in allowed, path


def test_no_secret_value_is_written(example_env):
    """Secrets are references (Secret names, Vault paths), never literal values: the one detector agrees."""
    files = render(example_env)
    assert not [path for path, text in yaml_files(files).items() for doc in docs(text) if doc.get("kind") == "Secret"]
    assert secrets.scan_files(files) == []


def test_every_namespace_gets_pod_security_labels(example_env):
    for path, app in applications(render(example_env)).items():
        ns = app["spec"]["destination"]["namespace"]
        if ns == "kube-system" or "managedNamespaceMetadata" not in app["spec"].get("syncPolicy", {}):
            assert ns in ("kube-system", "argocd"), path
            continue
        labels = app["spec"]["syncPolicy"]["managedNamespaceMetadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] in ("privileged", "baseline", "restricted")


def test_business_namespaces_default_deny_with_allows(example_env):
    files = render(example_env)
    for app in ("store-api", "payment-service"):
        folder = "apps/%s/%s/" % (app, example_env)
        kinds = [(d["kind"], d["metadata"]["name"]) for f, t in files.items() if f.startswith(folder) for d in docs(t)]
        assert ("NetworkPolicy", "default-deny") in kinds
        assert ("NetworkPolicy", "allow-dns") in kinds
        assert ("NetworkPolicy", "%s-ingress" % app) in kinds
    egress = docs(files["apps/payment-service/%s/networkpolicy-payment-service-egress.yaml" % example_env])[0]
    assert egress["spec"]["egress"][0]["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


def test_app_secrets_are_external_secret_references(production):
    files = gitops.render(build_spec(*production))
    secret = docs(files["apps/store-api/production/externalsecret-store-api-db.yaml"])[0]
    assert secret["apiVersion"] == "external-secrets.io/v1"
    assert secret["spec"]["secretStoreRef"] == {"kind": "SecretStore", "name": "vault"}
    assert [d["remoteRef"] for d in secret["spec"]["data"]] == [
        {"key": "apps/store-api/db", "property": "password"},
        {"key": "apps/store-api/db", "property": "username"},
    ]


def test_disabled_component_leaves_the_tree(production):
    variables, groups, hostvars = production
    variables["plinth_components"]["cloudflared"]["enabled"] = False
    files = gitops.render(build_spec(variables, groups, hostvars))
    assert not [f for f in files if "cloudflared" in f]


def test_shared_namespace_policies_belong_to_one_app(production):
    variables, groups, hostvars = production
    for app in variables["plinth_apps"]:
        app["namespace"] = "shop"
    files = gitops.render(build_spec(variables, groups, hostvars))
    deny = [f for f in files if f.endswith("networkpolicy-default-deny.yaml") and f.startswith("apps/")]
    assert deny == ["apps/store-api/production/networkpolicy-default-deny.yaml"]


@pytest.mark.parametrize("repo,expected", [
    ("oci://registry.example.com/charts", {"repoURL": "registry.example.com/charts", "chart": "store-api"}),
    ("./charts/store-api", {"repoURL": "git@git.example.com:acme/platform-gitops.git", "path": "charts/store-api"}),
])
def test_chart_reference_kinds(production, repo, expected):
    variables, groups, hostvars = production
    variables["plinth_apps"][0]["chart"]["repo"] = repo
    files = gitops.render(build_spec(variables, groups, hostvars))
    source = docs(files["clusters/production/apps/apps-store-api.yaml"])[0]["spec"]["sources"][0]
    for key, value in expected.items():
        assert source[key] == value


def _with_cilium_chart(inventory, repo):
    variables, groups, hostvars = inventory
    components = variables.setdefault("plinth_components", {})
    components.setdefault("cilium", {})["chart"] = {"repo": repo, "name": "cilium", "version": "1.20.0"}
    return build_spec(variables, groups, hostvars)


def test_helm_release_installs_what_the_application_manages(production):
    spec = build_spec(*production)
    release = gitops.helm_release(spec, "cilium")
    app = docs(gitops.render(spec)["clusters/production/apps/infra-cilium.yaml"])[0]
    chart_source = app["spec"]["sources"][0]
    destination = (chart_source["helm"]["releaseName"], app["spec"]["destination"]["namespace"])
    assert (release["name"], release["namespace"]) == destination
    assert (release["chart_repo_url"], release["chart_ref"], release["chart_version"]) == (
        chart_source["repoURL"], chart_source["chart"], chart_source["targetRevision"])
    values = docs(gitops.render(spec)["infra/cilium/values-production.yaml"])[0]
    assert release["values"] == values


@pytest.mark.parametrize("repo,ref,repo_url,version", [
    ("oci://registry.example.com/charts/", "oci://registry.example.com/charts/cilium", None, "1.20.0"),
    ("/srv/charts/cilium", "/srv/charts/cilium", None, None),
    ("file:///srv/charts/cilium", "/srv/charts/cilium", None, None),
    ("./charts/cilium", "/clone/charts/cilium", None, None),
])
def test_helm_release_chart_reference_kinds(production, repo, ref, repo_url, version):
    # build_spec refuses a chart outside the clone; helm_release still passes an absolute path through.
    spec = _with_cilium_chart(production, "./charts/cilium")
    spec["components"]["cilium"]["chart"]["repo"] = repo
    release = gitops.helm_release(spec, "cilium", "/clone")
    assert (release["chart_ref"], release["chart_repo_url"], release["chart_version"]) == (ref, repo_url, version)


def test_helm_release_local_chart_honours_the_repository_path(production):
    variables, groups, hostvars = production
    variables["plinth_gitops"]["path"] = "platform/"
    spec = _with_cilium_chart((variables, groups, hostvars), "./charts/cilium")
    assert gitops.helm_release(spec, "cilium", "/clone")["chart_ref"] == "/clone/platform/charts/cilium"


def test_helm_release_local_chart_needs_the_clone(production):
    spec = _with_cilium_chart(production, "./charts/cilium")
    with pytest.raises(ValueError) as exc:
        gitops.helm_release(spec, "cilium")
    assert str(exc.value) == ("release 'cilium' uses the chart path './charts/cilium' inside the GitOps "
                              "repository: give the folder of its local clone")


@pytest.mark.parametrize("name", ["nope", "cloudflared"])
def test_helm_release_names_the_enabled_releases(production, name):
    spec = build_spec(*production)
    with pytest.raises(ValueError) as exc:
        gitops.helm_release(spec, name)
    message = str(exc.value)
    assert message.startswith("release %r is not an enabled Helm release of this inventory (enabled: " % name)
    assert "argo-cd, " in message and "cloudflared" not in message.split("(")[1]


def test_helm_release_of_a_disabled_component(production):
    variables, groups, hostvars = production
    assert gitops.helm_release(build_spec(*production), "metrics-server")["name"] == "metrics-server"
    variables["plinth_components"]["metrics_server"] = {"enabled": False}
    spec = build_spec(variables, groups, hostvars)
    with pytest.raises(ValueError):
        gitops.helm_release(spec, "metrics-server")


# --- charts from a mirror (air-gapped sites) -------------------------------------------

MIRROR = "https://charts.mirror.example.com/plinth"


def _mirrored_spec(inventory, mirror=MIRROR):
    variables, groups, hostvars = inventory
    variables["plinth_chart_mirror"] = mirror
    return build_spec(variables, groups, hostvars)


def test_chart_mirror_serves_every_remote_chart(production):
    plain = build_spec(*production)
    spec = _mirrored_spec(production)
    files = gitops.render(spec)
    charts = 0
    for app in applications(files).values():
        for source in app["spec"].get("sources", []):
            if "chart" in source:
                charts += 1
                assert source["repoURL"] == MIRROR, app["metadata"]["name"]
    assert charts == len([r for _c, r, _s in gitops.releases(plain) if r.chart]) + len(plain["apps"])
    upstream = set(r.chart["repo"] for _c, r, _s in gitops.releases(plain) if r.chart)
    for project in docs(files["clusters/production/projects.yaml"]):
        assert not upstream & set(project["spec"]["sourceRepos"]), project["metadata"]["name"]
        if project["metadata"]["name"] != "root":
            assert MIRROR in project["spec"]["sourceRepos"]


def test_chart_mirror_also_serves_the_bootstrap_installs(production):
    spec = _mirrored_spec(production, "oci://registry.mirror.example.com/plinth/")
    release = gitops.helm_release(spec, "argo-cd")
    assert (release["chart_ref"], release["chart_repo_url"], release["chart_version"]) == (
        "oci://registry.mirror.example.com/plinth/argo-cd", None, "10.1.1")
    spec = _mirrored_spec(production)
    release = gitops.helm_release(spec, "cilium")
    assert (release["chart_ref"], release["chart_repo_url"]) == ("cilium", MIRROR)


def test_chart_mirror_leaves_charts_kept_in_the_repository(production):
    variables, groups, hostvars = production
    variables["plinth_apps"][0]["chart"]["repo"] = "./charts/store-api"
    spec = _mirrored_spec((variables, groups, hostvars))
    source = docs(gitops.render(spec)["clusters/production/apps/apps-store-api.yaml"])[0]["spec"]["sources"][0]
    assert source["path"] == "charts/store-api" and source["repoURL"] == variables["plinth_gitops"]["repo_url"]


@pytest.mark.parametrize("mirror", ["/srv/charts", "ftp://charts.example.com", "https://", "oci:// x"])
def test_chart_mirror_must_be_a_url(production, mirror):
    variables, groups, hostvars = production
    variables["plinth_chart_mirror"] = mirror
    with pytest.raises(SpecError) as caught:
        build_spec(variables, groups, hostvars)
    assert [e for e in caught.value.errors if e.startswith("plinth_chart_mirror: got %r" % mirror)]


# --- releases whose CRDs client-side apply cannot store --------------------------------

@pytest.mark.parametrize("release", ["argo-cd", "external-secrets", "cloudnative-pg", "rook-ceph",
                                     "prometheus-operator-crds", "kube-prometheus-stack"])
def test_releases_with_large_crds_sync_server_side(production, release):
    files = gitops.render(build_spec(*production))
    [app] = [a for a in applications(files).values() if a["metadata"]["name"] == release]
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]


def test_sync_waves_list_every_child_application_once_in_wave_order(example_env):
    spec = build_spec(*load_inventory(example_env))
    waves = gitops.sync_waves(spec)
    files = gitops.render(spec)
    children = dict((a["metadata"]["name"], wave(a)) for p, a in applications(files).items()
                    if not p.endswith("/root.yaml"))
    assert [w["wave"] for w in waves] == sorted(set(children.values()))
    listed = [name for w in waves for name in w["applications"]]
    assert sorted(listed) == sorted(children)
    for entry in waves:
        assert all(children[name] == entry["wave"] for name in entry["applications"])
    assert waves[0]["wave"] == 0 and "argo-cd" in waves[0]["applications"]
    assert waves[-1] == {"wave": 100, "applications": sorted(a["name"] for a in spec["apps"])}


def test_widened_projects_keep_admitting_what_the_live_ones_admit(production):
    rendered = docs(gitops.render(build_spec(*production))["clusters/production/projects.yaml"])
    live = [{"metadata": {"name": "business"}, "spec": {"destinations": [
        {"server": gitops.IN_CLUSTER, "namespace": "payments"},
        {"server": gitops.IN_CLUSTER, "namespace": "retired"}]}}]
    widened = dict((p["metadata"]["name"], p) for p in gitops.widened_projects(rendered, live))
    assert [d["namespace"] for d in widened["business"]["spec"]["destinations"]] == ["payments", "store", "retired"]
    as_rendered = dict((p["metadata"]["name"], p) for p in rendered)
    for name in ("infra", "platform", "root"):
        assert widened[name] == as_rendered[name]
    assert gitops.widened_projects(rendered, rendered) == rendered
    assert [d["namespace"] for d in as_rendered["business"]["spec"]["destinations"]] == ["payments", "store"]


@pytest.mark.parametrize("path, repo, wanted", [
    ("", "./charts/store", "charts/store"),
    ("", "file://charts/store", "charts/store"),
    ("envs/prod", "./charts/store", "envs/prod/charts/store"),
    ("envs/prod", "../charts/store", "envs/charts/store"),
    ("envs/prod", ".hidden/store", "envs/prod/.hidden/store"),
])
def test_argo_cd_and_the_bootstrap_install_read_one_local_chart(path, repo, wanted):
    spec = build_spec(*load_inventory("production"))
    spec["gitops"]["path"] = path
    _component, release, settings = [found for found in gitops.releases(spec) if found[1].chart is not None][0]
    settings[release.chart_option] = {"repo": repo, "name": "store", "version": "1.0.0"}
    argo = gitops._chart_location(spec, settings[release.chart_option])
    helm = gitops.helm_release(spec, release.name, chart_root="/clone")
    assert argo["path"] == wanted
    assert helm["chart_ref"] == "/clone/" + wanted

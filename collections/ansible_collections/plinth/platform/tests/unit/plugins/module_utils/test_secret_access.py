# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Least privilege for secrets: one SecretStore per namespace, and the Vault access made from the same tree."""

from __future__ import absolute_import, annotations, division, print_function

import yaml

from ansible_collections.plinth.platform.plugins.filter import platform
from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import common, external_secrets
from ansible_collections.plinth.platform.plugins.module_utils.secret_access import remote_keys, secret_access
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

__metaclass__ = type

ESO = "external-secrets.io/v1"


def _objects(spec):
    """(file, document) of every raw manifest the tree writes."""
    found = []
    for path, text in gitops.render(spec).items():
        if path.startswith(("infra/", "apps/")) and "/values-" not in path:
            found += [(path, doc) for doc in yaml.safe_load_all(text) if doc]
    return found


def _of_kind(objects, kind):
    return [(path, doc) for path, doc in objects if doc["kind"] == kind]


def _owner(path):
    """The Application folder a raw manifest belongs to: infra/<release> or apps/<app>."""
    return "/".join(path.split("/")[:2])


def _remote_keys(secrets):
    return set(item["remoteRef"]["key"] for _path, doc in secrets for item in doc["spec"]["data"])


def _reading_vault(secrets):
    """The ExternalSecrets that read Vault through their namespace's SecretStore, not a cloud ClusterSecretStore."""
    return [(path, doc) for path, doc in secrets if doc["spec"]["secretStoreRef"]["kind"] == "SecretStore"]


def test_every_external_secret_reads_through_the_store_of_its_own_namespace(example_env):
    """Vault through the namespace's own SecretStore, or a cloud store that admits the namespace."""
    spec = build_spec(*load_inventory(example_env))
    objects = _objects(spec)
    secrets = _of_kind(objects, "ExternalSecret")
    assert secrets
    stores = dict(((doc["metadata"]["namespace"], doc["metadata"]["name"]), doc)
                  for _path, doc in _of_kind(objects, "SecretStore"))
    cluster_stores = dict((doc["metadata"]["name"], doc) for _path, doc in _of_kind(objects, "ClusterSecretStore"))
    for path, secret in secrets:
        ref = secret["spec"]["secretStoreRef"]
        namespace = secret["metadata"]["namespace"]
        if ref["kind"] == "ClusterSecretStore":
            [condition] = cluster_stores[ref["name"]]["spec"]["conditions"]
            assert namespace in condition["namespaces"], path
        else:
            assert ref["kind"] == "SecretStore", path
            assert (namespace, ref["name"]) in stores, path
    configured = set(store["name"] for store in spec["components"]["external_secrets"]["stores"])
    assert set(cluster_stores) <= configured
    for store in cluster_stores.values():
        assert store["spec"]["conditions"][0]["namespaces"], store["metadata"]["name"]


def _wave(doc):
    return int((doc["metadata"].get("annotations") or {}).get("argocd.argoproj.io/sync-wave", "0"))


def test_a_store_syncs_in_a_wave_before_every_external_secret_it_serves(example_env):
    # Argo CD waits for each wave to be healthy, and an ExternalSecret is not without its store:
    # Kong's database ExternalSecret (wave -2) once waited forever for a store in wave -1.
    objects = _objects(build_spec(*load_inventory(example_env)))
    for store_path, store in _of_kind(objects, "SecretStore"):
        same_app = [doc for path, doc in _of_kind(objects, "ExternalSecret") if _owner(path) == _owner(store_path)
                    and doc["metadata"]["namespace"] == store["metadata"]["namespace"]]
        reader = [doc for path, doc in _of_kind(objects, "ServiceAccount") if _owner(path) == _owner(store_path)
                  and doc["metadata"]["namespace"] == store["metadata"]["namespace"]
                  and doc["metadata"]["name"] == "vault-secrets-reader"]
        assert same_app and all(_wave(store) < _wave(doc) for doc in same_app), store_path
        assert reader and _wave(reader[0]) <= _wave(store), store_path


def test_each_reading_namespace_has_one_store_and_one_reader(example_env):
    """Every namespace that reads Vault, and none other: one that reads a cloud store alone gets neither."""
    spec = build_spec(*load_inventory(example_env))
    objects = _objects(spec)
    reading = sorted(set(doc["metadata"]["namespace"]
                         for _path, doc in _reading_vault(_of_kind(objects, "ExternalSecret"))))
    stores = _of_kind(objects, "SecretStore")
    assert sorted(doc["metadata"]["namespace"] for _path, doc in stores) == reading
    reader = spec["components"]["external_secrets"]["reader_service_account"]
    readers = [(path, doc) for path, doc in _of_kind(objects, "ServiceAccount") if doc["metadata"]["name"] == reader]
    assert sorted(doc["metadata"]["namespace"] for _path, doc in readers) == reading
    for path, store in stores:
        ns = store["metadata"]["namespace"]
        auth = store["spec"]["provider"]["vault"]["auth"]["kubernetes"]
        assert auth == {"mountPath": "kubernetes", "role": "plinth-" + ns, "serviceAccountRef": {"name": reader}}
        # Store, reader and at least one ExternalSecret of the namespace share an Application.
        [reader_path] = [p for p, doc in readers if doc["metadata"]["namespace"] == ns]
        assert _owner(reader_path) == _owner(path)
        assert [p for p, doc in _of_kind(objects, "ExternalSecret")
                if doc["metadata"]["namespace"] == ns and _owner(p) == _owner(path)], path


def test_secret_access_lists_exactly_the_paths_of_each_namespace(example_env):
    """The Vault paths of each namespace; what is read from a cloud store is no business of Vault's."""
    spec = build_spec(*load_inventory(example_env))
    secrets = _reading_vault(_of_kind(_objects(spec), "ExternalSecret"))
    access = secret_access(spec)
    assert (access["kv_mount"], access["auth_mount"], access["service_account"]) == (
        "secret", "kubernetes", "vault-secrets-reader")
    namespaces = sorted(set(doc["metadata"]["namespace"] for _path, doc in secrets))
    assert [c["namespace"] for c in access["consumers"]] == namespaces
    for consumer in access["consumers"]:
        ns = consumer["namespace"]
        assert consumer["role"] == consumer["policy"] == "plinth-" + ns
        mine = [(p, doc) for p, doc in secrets if doc["metadata"]["namespace"] == ns]
        assert consumer["paths"] == sorted(_remote_keys(mine)), ns


def test_secret_access_of_the_production_example(production):
    consumers = secret_access(build_spec(*production))["consumers"]
    # The example's tunnel is locally managed (credentials file), Alertmanager has two receivers, and
    # payment-service reads AWS Secrets Manager, so namespace payments is no Vault consumer.
    assert [(c["namespace"], c["paths"]) for c in consumers] == [
        ("cloudflared", ["platform/cloudflared-credentials"]),
        ("kong", ["platform/kong/postgres"]),
        ("monitoring", ["platform/monitoring/grafana", "platform/monitoring/pagerduty",
                        "platform/monitoring/slack"]),
        ("store", ["apps/store-api/db"]),
    ]


def test_secret_access_builds_no_helm_values(production, monkeypatch):
    spec = build_spec(*production)
    expected = secret_access(spec)

    def refuse(*_args):
        raise AssertionError("Helm values were built")
    monkeypatch.setattr(gitops.app_values, "values", refuse)
    for _component, release, _settings in gitops.releases(spec):
        if release.values is not None:
            monkeypatch.setattr(release, "values", refuse)
    assert secret_access(spec) == expected


def test_the_filter_is_secret_access(production):
    spec = platform.platform_spec(*production)
    assert platform.vault_access(spec) == secret_access(build_spec(*production))


def test_role_prefix_reaches_the_stores_and_the_roles(production):
    variables, groups, hostvars = production
    variables["plinth_components"]["external_secrets"]["vault_role_prefix"] = "prod-eso-"
    spec = build_spec(variables, groups, hostvars)
    roles = dict((c["namespace"], c["role"]) for c in secret_access(spec)["consumers"])
    for _path, store in _of_kind(_objects(spec), "SecretStore"):
        ns = store["metadata"]["namespace"]
        assert store["spec"]["provider"]["vault"]["auth"]["kubernetes"]["role"] == roles[ns] == "prod-eso-" + ns


def _in(objects, kind, namespace):
    return [(path, doc) for path, doc in _of_kind(objects, kind) if doc["metadata"]["namespace"] == namespace]


def test_a_shared_app_namespace_has_one_store_owned_by_its_first_reader(production):
    variables, groups, hostvars = production
    apps = variables["plinth_apps"]
    for app in apps:
        app["namespace"] = "shop"
        for ref in (app.get("secrets") or {}).values():
            ref.pop("store", None)  # every secret from Vault, through the namespace's one SecretStore
            ref.pop("refresh", None)
    first_secrets = apps[0].pop("secrets")
    objects = _objects(build_spec(variables, groups, hostvars))
    # The first app reads nothing: the store goes with the ExternalSecrets of the second.
    assert [_owner(path) for path, _doc in _in(objects, "SecretStore", "shop")] == ["apps/" + apps[1]["name"]]
    apps[0]["secrets"] = first_secrets
    spec = build_spec(variables, groups, hostvars)
    objects = _objects(spec)
    assert [_owner(path) for path, _doc in _in(objects, "SecretStore", "shop")] == ["apps/" + apps[0]["name"]]
    assert [_owner(path) for path, _doc in _in(objects, "ServiceAccount", "shop")] == ["apps/" + apps[0]["name"]]
    [consumer] = [c for c in secret_access(spec)["consumers"] if c["namespace"] == "shop"]
    assert consumer["paths"] == sorted(_remote_keys(_in(objects, "ExternalSecret", "shop")))
    assert len(consumer["paths"]) == 2


def test_components_sharing_a_namespace_share_one_store(production):
    variables, groups, hostvars = production
    cloudflared = variables["plinth_components"]["cloudflared"]
    for option in ("mode", "tunnel", "ingress"):
        cloudflared.pop(option, None)  # a remotely managed tunnel: its token at platform/cloudflared
    cloudflared["namespace"] = "kong"
    spec = build_spec(variables, groups, hostvars)
    objects = _objects(spec)
    assert [(_owner(p), d["metadata"]["namespace"]) for p, d in _of_kind(objects, "SecretStore")
            if d["metadata"]["namespace"] == "kong"] == [("infra/kong", "kong")]
    [kong] = [c for c in secret_access(spec)["consumers"] if c["namespace"] == "kong"]
    assert kong["paths"] == ["platform/cloudflared", "platform/kong/postgres"]


def test_no_two_applications_own_one_object(example_env):
    owners = {}
    for path, doc in _objects(build_spec(*load_inventory(example_env))):
        key = (doc["apiVersion"], doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        owners.setdefault(key, set()).add(_owner(path))
    assert dict((k, v) for k, v in owners.items() if len(v) > 1) == {}


def test_consul_store_skips_the_dry_run_like_its_external_secret(production):
    variables, groups, hostvars = production
    variables["plinth_components"]["consul"]["gossip_encryption"] = "vault"
    spec = build_spec(variables, groups, hostvars)
    objects = [(p, d) for p, d in _objects(spec) if p.startswith("infra/consul/")]
    [(_p, secret)] = _of_kind(objects, "ExternalSecret")
    [(_p, store)] = _of_kind(objects, "SecretStore")
    option = "argocd.argoproj.io/sync-options"
    assert store["metadata"]["annotations"][option] == secret["metadata"]["annotations"][option] \
        == "SkipDryRunOnMissingResource=true"
    assert store["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
    assert {"namespace": "consul", "role": "plinth-consul", "policy": "plinth-consul",
            "paths": ["platform/consul/gossip"]} in secret_access(spec)["consumers"]


def test_business_project_admits_the_store_and_its_reader(production):
    files = gitops.render(build_spec(*production))
    [business] = [d for d in yaml.safe_load_all(files["clusters/production/projects.yaml"])
                  if d["metadata"]["name"] == "business"]
    admitted = business["spec"]["namespaceResourceWhitelist"]
    assert {"group": "external-secrets.io", "kind": "SecretStore"} in admitted
    assert {"group": "", "kind": "ServiceAccount"} in admitted
    assert {"group": "external-secrets.io", "kind": "ClusterSecretStore"} not in admitted


def _with_aws_reader(monkeypatch, spec):
    """The tree's raw manifests plus ExternalSecrets in namespace payments that read a ClusterSecretStore."""
    real = gitops.raw_manifests
    extra = [
        common.external_secret(spec, "aws-only", "payments", {"key": ("prod/payments/aws", "key")}, store="aws-main"),
        common.external_secret(spec, "aws-elsewhere", "aws-land", {"key": ("prod/land", "key")}, store="aws-main"),
    ]
    monkeypatch.setattr(gitops, "raw_manifests", lambda s: real(s) + extra)


def test_secrets_read_from_a_cloud_store_are_not_in_vault_policies(production, monkeypatch):
    spec = build_spec(*production)
    before = secret_access(spec)
    _with_aws_reader(monkeypatch, spec)
    after = secret_access(spec)
    assert after == before
    paths = [p for consumer in after["consumers"] for p in consumer["paths"]]
    assert "prod/payments/aws" not in paths
    assert "aws-land" not in [consumer["namespace"] for consumer in after["consumers"]]


def test_remote_keys_and_vault_reading():
    vault_reader = {"spec": {"secretStoreRef": {"kind": "SecretStore", "name": "vault"},
                             "data": [{"remoteRef": {"key": "a/b", "property": "x"}}],
                             "dataFrom": [{"extract": {"key": "c/d"}}]}}
    assert remote_keys(vault_reader) == {"a/b", "c/d"}
    assert external_secrets.reads_vault(vault_reader)
    assert external_secrets.reads_vault({"spec": {"secretStoreRef": {"name": "vault"}}})
    assert not external_secrets.reads_vault({"spec": {"secretStoreRef": {"kind": "ClusterSecretStore",
                                                                         "name": "aws-main"}}})

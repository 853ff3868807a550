"""The retention job of Kong's volume-snapshot backups, for real: the script the production
example renders into its CronJob, run with a real kubectl and jq (what its image carries)
against a real API server serving the Backup kind, deletes exactly the Backups past the
retention of its own cluster and method, and never the newest completed one."""

import os
import subprocess
import time
import uuid

import pytest

from airgap import cache, launch
from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec
from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory
from testbed import testcluster

CNPG = "/apis/postgresql.cnpg.io/v1"
JOB = "kong-postgres-backup-retention"


class KubectlMissing(Exception):
    pass


@pytest.fixture(scope="module")
def kubectl():
    def find(version, root):
        path = os.path.join(root, "kubernetes", "v" + version, "bin", "kubectl")
        return path if os.access(path, os.X_OK) else None
    return launch.ensure_built(find, "airgap.build_kubernetes", testcluster.DEFAULT_VERSION, cache.root(),
                               "kubectl %s" % testcluster.DEFAULT_VERSION, KubectlMissing)


@pytest.fixture(scope="module")
def retention_job():
    spec = build_spec(*load_inventory("production"))
    found = [doc for doc in gitops.raw_manifests(spec) if doc["kind"] == "CronJob" and doc["metadata"]["name"] == JOB]
    assert found, "the production example renders no %s CronJob" % JOB
    container = found[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return container["command"], dict((e["name"], e["value"]) for e in container["env"])


def _backup_kind(api):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "backups.postgresql.cnpg.io"},
        "spec": {"group": "postgresql.cnpg.io", "scope": "Namespaced",
                 "names": {"plural": "backups", "singular": "backup", "kind": "Backup"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]},
    }
    if api.get_or_none("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/backups.postgresql.cnpg.io") is None:
        api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    def served():
        try:
            return True, api.request("GET", CNPG + "/backups")
        except testcluster.ApiError as error:
            return False, error.status
    testcluster.eventually(served, "the Backup kind served", 30)


def _backup(api, namespace, name, cluster, method, phase):
    path = CNPG + "/namespaces/%s/backups" % namespace
    api.request("POST", path, {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup",
                               "metadata": {"name": name, "namespace": namespace},
                               "spec": {"cluster": {"name": cluster}, "method": method}})
    if phase:
        api.request("PATCH", "%s/%s/status" % (path, name), {"status": {"phase": phase}},
                    content_type="application/merge-patch+json")


def _names(api, namespace):
    return sorted(b["metadata"]["name"] for b in api.request("GET", CNPG + "/namespaces/%s/backups" % namespace)["items"])


def _run(command, env, kubectl, cluster, namespace, keep_seconds):
    run_env = dict(os.environ, **env)
    run_env.update(NAMESPACE=namespace, KEEP_SECONDS=str(keep_seconds), KUBECONFIG=cluster.admin_conf,
                   PATH=os.path.dirname(kubectl) + os.pathsep + os.environ["PATH"])
    result = subprocess.run(command, env=run_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_job_deletes_only_its_clusters_expired_snapshot_backups(cluster, kubectl, retention_job):
    command, env = retention_job
    api = cluster.api
    _backup_kind(api)
    namespace = "kong-" + uuid.uuid4().hex[:6]
    api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    own, method = env["CLUSTER"], "volumeSnapshot"
    _backup(api, namespace, "nightly-1", own, method, "completed")
    _backup(api, namespace, "failed-1", own, method, "failed")
    _backup(api, namespace, "other-cluster", "another-postgres", method, "completed")
    _backup(api, namespace, "object-store", own, "barmanObjectStore", "completed")
    time.sleep(1.1)  # creation times have one-second resolution: nightly-2 is the newest
    _backup(api, namespace, "nightly-2", own, method, "completed")
    _backup(api, namespace, "running", own, method, "running")
    every = ["failed-1", "nightly-1", "nightly-2", "object-store", "other-cluster", "running"]

    # Within the retention (the example's, 30 days): nothing goes.
    _run(command, env, kubectl, cluster, namespace, env["KEEP_SECONDS"])
    assert _names(api, namespace) == every

    # Past it (every Backup made before the run is older than 0 s): the newest completed one stays,
    # and so do other clusters' and other methods' Backups.
    time.sleep(1.1)
    _run(command, env, kubectl, cluster, namespace, 0)
    kept = ["nightly-2", "object-store", "other-cluster"]
    testcluster.eventually(lambda: (_names(api, namespace) == kept, _names(api, namespace)),
                           "only the expired Backups deleted", 30)

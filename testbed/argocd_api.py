"""The test Argo CD's side of the cluster's API, through the kubeconfig it is given: its
CRDs applied and established, and the namespace's objects the chart would have made.
"""

import base64
import json
import os
import time
import urllib.request

from testbed import pki, testcluster

CRD_GROUP_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
FIELD_MANAGER = "plinth-testargocd"
PART_OF = {"app.kubernetes.io/part-of": "argocd"}


class ArgoCDError(Exception):
    pass


def load_kubeconfig(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return json.loads(text)
    except ValueError:
        import yaml  # noqa: PLC0415  (only for YAML kubeconfigs; PyYAML comes with ansible-core)
        return yaml.safe_load(text)


def api_from_kubeconfig(path, files_dir):
    """A testcluster.Api for the kubeconfig's current context (client certificate or token)."""
    config = load_kubeconfig(path)
    context_name = config.get("current-context")
    contexts = {c["name"]: c["context"] for c in config.get("contexts", [])}
    if context_name not in contexts:
        raise ArgoCDError("%s: no current context" % path)
    context = contexts[context_name]
    cluster = {c["name"]: c["cluster"] for c in config["clusters"]}[context["cluster"]]
    user = {u["name"]: u["user"] for u in config.get("users", [])}.get(context.get("user"), {})
    os.makedirs(files_dir, mode=0o700, exist_ok=True)

    def material(data_key, file_key, name):
        if user.get(file_key) or cluster.get(file_key):
            return user.get(file_key) or cluster.get(file_key)
        data = user.get(data_key) or cluster.get(data_key)
        if not data:
            return None
        target = os.path.join(files_dir, name)
        pki.write_file(target, base64.b64decode(data))
        return target
    return testcluster.Api(
        cluster["server"],
        material("certificate-authority-data", "certificate-authority", "ca.crt"),
        material("client-certificate-data", "client-certificate", "client.crt"),
        material("client-key-data", "client-key", "client.key"),
        user.get("token"))


def raw_request(api, method, path, data, content_type, query=""):
    """A request with a body sent as is (a CRD's YAML for server-side apply)."""
    request = urllib.request.Request(api.server + path + query, data=data, method=method)
    request.add_header("Content-Type", content_type)
    request.add_header("Accept", "application/json")
    if api.token:
        request.add_header("Authorization", "Bearer " + api.token)
    try:
        with urllib.request.urlopen(request, context=api.context, timeout=60) as response:
            return json.loads(response.read().decode())
    except urllib.error.HTTPError as error:
        raise testcluster.ApiError(error.code, error.read().decode(errors="replace"))


def apply_crds(api, crd_paths, timeout=60):
    """Server-side apply: client-side apply's last-applied annotation would not fit the
    ApplicationSet CRD (over 1 MB). Returns once every CRD is Established."""
    names = []
    for path in crd_paths:
        with open(path, "rb") as handle:
            body = handle.read()
        name = crd_name(body, path)
        raw_request(api, "PATCH", "%s/%s" % (CRD_GROUP_PATH, name), body,
                    "application/apply-patch+yaml", "?fieldManager=%s&force=true" % FIELD_MANAGER)
        names.append(name)
    deadline = time.monotonic() + timeout
    for name in names:
        while not crd_established(api, name):
            if time.monotonic() > deadline:
                raise ArgoCDError("CRD %s not Established after %d s" % (name, timeout))
            time.sleep(0.2)
    return names


def crd_name(body, path):
    """metadata.name of a CRD manifest, read without a YAML parser (it is the first `name:`
    under the top-level metadata)."""
    in_metadata = False
    for line in body.decode("utf-8").splitlines():
        if line.startswith("metadata:"):
            in_metadata = True
        elif in_metadata and line.startswith("  name:"):
            return line.split(":", 1)[1].strip().strip("'\"")
        elif line and not line.startswith((" ", "#")):
            in_metadata = False
    raise ArgoCDError("%s: no metadata.name" % path)


def crd_established(api, name):
    crd = api.request("GET", "%s/%s" % (CRD_GROUP_PATH, name))
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def create_if_absent(api, path, body, timeout=30):
    """POST body; an object of that name already there is left exactly as it is. A 404
    is retried: the API server serves a just-Established CRD's resources a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            api.request("POST", path, body)
            return True
        except testcluster.ApiError as error:
            if error.status == 409:
                return False
            if error.status != 404 or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def seed_objects(namespace):
    """(collection path, object): the settings the controller cannot start without, and
    the default AppProject argocd-server would create."""
    return [
        ("/api/v1/namespaces/%s/configmaps" % namespace, {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "argocd-cm", "labels": dict(PART_OF)}, "data": {}}),
        ("/apis/argoproj.io/v1alpha1/namespaces/%s/appprojects" % namespace, {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": "default"},
            "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                     "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}}),
    ]

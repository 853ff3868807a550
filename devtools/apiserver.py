"""What `make acceptance` asks of the throwaway kube-apiserver: discovery of the served
kinds, CRDs installed and established, namespaces, and every object sent as a
server-side apply dry run with strict field validation, its warnings kept.
"""

import json
import time
import urllib.request

from testbed import testcluster

FIELD_MANAGER = "plinth-acceptance"

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

CRD_TIMEOUT = 60


class Discovery:
    """The API server's resources: (apiVersion, kind) -> (plural, namespaced)."""

    def __init__(self, api):
        self.resources = {}
        group_versions = ["v1"]
        for group in api.request("GET", "/apis")["groups"]:
            group_versions.extend(v["groupVersion"] for v in group["versions"])
        for group_version in group_versions:
            try:
                listing = api.request("GET", api_root(group_version))
            except testcluster.ApiError:
                continue  # an aggregated API that is not available
            for resource in listing["resources"]:
                if "/" not in resource["name"]:
                    self.resources[(group_version, resource["kind"])] = (resource["name"], resource["namespaced"])

    @property
    def groups(self):
        return set(group_of(gv) for gv, _ in self.resources)

    def api_versions(self):
        names = set()
        for group_version, kind in self.resources:
            names.update((group_version, group_version + "/" + kind))
        return names

    def path(self, obj, namespace):
        plural, namespaced = self.resources[(obj["apiVersion"], obj["kind"])]
        prefix = api_root(obj["apiVersion"])
        if namespaced:
            prefix += "/namespaces/" + namespace
        return prefix + "/" + plural


def api_root(group_version):
    return "/api/v1" if group_version == "v1" else "/apis/" + group_version


def group_of(api_version):
    return api_version.rpartition("/")[0]


def api_message(error):
    try:
        return json.loads(error.body).get("message") or error.body
    except ValueError:
        return error.body.strip()


def apply(api, path, obj, dry_run):
    """Server-side apply; returns the API server's warnings, raises ApiError on rejection."""
    query = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict", "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    name = obj.get("metadata", {}).get("name")
    if name:
        return request(api, "PATCH", path + "/" + name, obj, "application/apply-patch+yaml", query)
    del query["force"]  # generateName: only a create can take it
    return request(api, "POST", path, obj, "application/json", query)


def request(api, method, path, body, content_type, query):
    """testcluster.Api.request, but keeping the Warning headers the API server sends."""
    url = api.server + path + "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method)
    req.add_header("Content-Type", content_type)
    req.add_header("Accept", "application/json")
    if api.token:
        req.add_header("Authorization", "Bearer " + api.token)
    try:
        with urllib.request.urlopen(req, context=api.context, timeout=60) as response:
            response.read()
            return [warning_text(h) for h in response.headers.get_all("Warning") or []]
    except urllib.error.HTTPError as error:
        raise testcluster.ApiError(error.code, error.read().decode(errors="replace"))


def warning_text(header):
    """The text of an RFC 7234 Warning header: 299 - "text"."""
    text = header.split(" ", 2)[-1].strip()
    if text.startswith('"') and text.endswith('"'):
        text = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def install_crds(api, crds, timeout=CRD_TIMEOUT):
    """Apply the CRDs for real and wait until they are Established: name -> error message."""
    failed = {}
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for name, crd in crds.items():
        try:
            apply(api, path, crd, dry_run=False)
        except testcluster.ApiError as error:
            failed[name] = api_message(error)
    waiting = set(crds) - set(failed)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            conditions = api.request("GET", path + "/" + name).get("status", {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                waiting.discard(name)
        if waiting:
            time.sleep(0.5)
    for name in waiting:
        conditions = api.request("GET", path + "/" + name).get("status", {}).get("conditions") or []
        failed[name] = "not Established after %ds: %s" % (
            timeout, "; ".join(c.get("message", c["type"]) for c in conditions if c["status"] != "True"))
    return failed


def create_namespaces(api, labels_by_namespace):
    for name, labels in sorted(labels_by_namespace.items()):
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
        if name not in SYSTEM_NAMESPACES:
            apply(api, "/api/v1/namespaces", body, dry_run=False)


def discover(api, wanted=(), timeout=30):
    """Discovery that waits until every (apiVersion, kind) in wanted is served (new CRDs lag)."""
    deadline = time.monotonic() + timeout
    while True:
        found = Discovery(api)
        if all(key in found.resources for key in wanted) or time.monotonic() > deadline:
            return found
        time.sleep(1)

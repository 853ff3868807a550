# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""JSON requests to the Kubernetes API for Plinth's modules.

Only the Kubernetes client's kubeconfig handling (certificates, tokens, exec
plugins) and its connection pool are used, which stay the same across the
client's releases; requests and answers are plain JSON.
"""

from __future__ import absolute_import, annotations, division, print_function

import json
import os
import traceback

try:
    from kubernetes import config as kube_config
except ImportError:
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
else:
    KUBERNETES_IMPORT_ERROR = None

__metaclass__ = type


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__("%s %s: HTTP %d: %s" % (method, path, status, _reason(body)))
        self.status = status


def _reason(body):
    try:
        return json.loads(body).get("message") or body
    except ValueError:
        return body[:300]


class Api:
    """One cluster, reached with a kubeconfig (and context) as kubectl would."""

    def __init__(self, kubeconfig, context):
        self.client = kube_config.new_client_from_config(config_file=kubeconfig, context=context)
        self.configuration = self.client.configuration

    def _headers(self, content_type=None):
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        # auth_settings() asks an exec or OIDC provider for a fresh token when it needs one.
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        return headers

    def request(self, method, path, body=None, content_type=None):
        url = self.configuration.host.rstrip("/") + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        response = self.client.rest_client.pool_manager.request(
            method, url, body=data, headers=self._headers(content_type), preload_content=True, timeout=60)
        text = response.data.decode("utf-8")
        if response.status >= 300:
            raise ApiError(method, path, response.status, text)
        return json.loads(text)

    def raw_request(self, method, path, body=None, headers=None):
        """``(status, text)`` of any request, for proxied services that speak their own API."""
        url = self.configuration.host.rstrip("/") + path
        data = None if body is None else json.dumps(body).encode("utf-8")
        merged = self._headers()
        merged.update(headers or {})
        response = self.client.rest_client.pool_manager.request(
            method, url, body=data, headers=merged, preload_content=True, timeout=60)
        return response.status, response.data.decode("utf-8", "replace")

    def list_nodes(self):
        return dict((n["metadata"]["name"], n) for n in self.request("GET", "/api/v1/nodes")["items"])

    def get_node(self, name):
        return self.request("GET", "/api/v1/nodes/" + name)

    def apply_node(self, document, manager):
        path = "/api/v1/nodes/%s?fieldManager=%s&force=true" % (document["metadata"]["name"], manager)
        return self.request("PATCH", path, document, "application/apply-patch+yaml")

    def remove_labels(self, name, keys, manager):
        patch = {"metadata": {"labels": dict((key, None) for key in keys)}}
        path = "/api/v1/nodes/%s?fieldManager=%s" % (name, manager)
        return self.request("PATCH", path, patch, "application/merge-patch+json")


def argument_spec(**options):
    """``options`` plus the kubeconfig and context every API module takes (doc fragment kube_auth)."""
    from ansible.module_utils.basic import env_fallback

    spec = dict(
        kubeconfig=dict(type="path", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
        context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    )
    spec.update(options)
    return spec


def run_module(module, run, handled=()):
    """Connect with the module's kubeconfig and context, then exit with ``run(module, api)``.

    ``run`` returns the result dict, or ``(result, failure message)`` to fail with the result.
    The API's errors and ``handled`` exceptions fail the module with their message; any other
    error of the client (configuration, connection, TLS) with its type and a traceback.
    """
    from ansible.module_utils.basic import missing_required_lib

    if KUBERNETES_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=KUBERNETES_IMPORT_ERROR)
    kubeconfig = module.params["kubeconfig"]
    if kubeconfig and not os.path.exists(kubeconfig):
        module.fail_json(msg="kubeconfig: got %r; no such file" % kubeconfig)
    try:
        outcome = run(module, Api(kubeconfig, module.params["context"]))
    except (ApiError,) + tuple(handled) as error:
        module.fail_json(msg=str(error))
    except Exception as error:
        module.fail_json(msg="Kubernetes API: %s: %s" % (type(error).__name__, error),
                         exception=traceback.format_exc())
    result, failure = outcome if isinstance(outcome, tuple) else (outcome, None)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)

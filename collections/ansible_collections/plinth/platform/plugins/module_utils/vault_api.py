# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The Vault HTTP API, as much of it as the ``vault`` stage needs.

The same calls serve HashiCorp Vault and OpenBao.  A server is reached either
directly (``Direct``: a URL) or through the Kubernetes API server's proxy to
one pod (``PodProxy``), which needs only the admin kubeconfig the controller
already holds: no port forward, no Service exposed beyond the cluster.

Nothing here logs or returns a secret: errors carry the method, the API path
and Vault's own error text, which never holds a key or a token.
"""

from __future__ import absolute_import, annotations, division, print_function

import base64
import json
import time

__metaclass__ = type

TOKEN_HEADER = "X-Vault-Token"


class VaultError(Exception):
    def __init__(self, method, path, status, body):
        self.status = status
        super().__init__("%s /v1/%s: HTTP %s: %s" % (method, path, status, _reason(body)))


def _reason(body):
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        errors = None
    if errors:
        return "; ".join(str(e) for e in errors)
    return (body or "no answer")[:300]


class Direct:
    """A server at ``url`` (scheme, host and port), reached with urllib."""

    def __init__(self, url, ca_path=None, timeout=30):
        self.url = url.rstrip("/")
        self.name = self.url
        self.ca_path = ca_path
        self.timeout = timeout

    def send(self, method, path, body, headers):
        from ansible.module_utils.urls import open_url
        from ansible.module_utils.six.moves.urllib.error import HTTPError

        data = None if body is None else json.dumps(body)
        try:
            response = open_url(self.url + path, data=data, method=method, headers=headers,
                                timeout=self.timeout, ca_path=self.ca_path, follow_redirects="none")
            return response.getcode(), response.read().decode("utf-8")
        except HTTPError as error:
            return error.code, error.read().decode("utf-8", "replace")


class PodProxy:
    """One server pod, reached through the API server's proxy (``pods/<scheme>:<pod>:<port>/proxy``)."""

    def __init__(self, api, namespace, pod, port, scheme="http"):
        self.api = api
        self.name = "%s/%s" % (namespace, pod)
        self.prefix = "/api/v1/namespaces/%s/pods/%s:%s:%d/proxy" % (namespace, scheme, pod, port)

    def send(self, method, path, body, headers):
        return self.api.raw_request(method, self.prefix + path, body, headers)


class Vault:
    """One Vault server: JSON in, JSON out, ``token`` sent when set."""

    def __init__(self, transport, token=None):
        self.transport = transport
        self.token = token

    @property
    def name(self):
        return self.transport.name

    def request(self, method, path, body=None, ok=(200, 204)):
        """``(status, answer)`` for ``/v1/<path>``; a status outside ``ok`` raises VaultError."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers[TOKEN_HEADER] = self.token
        status, text = self.transport.send(method, "/v1/" + path, body, headers)
        if status not in ok:
            raise VaultError(method, path, status, text)
        return status, (json.loads(text) if text.strip() else {})

    def get(self, path, missing_ok=False):
        """The answer's ``data`` (or the whole answer for sys/ paths that have none); None when 404 is ok."""
        status, answer = self.request("GET", path, ok=(200, 404) if missing_ok else (200,))
        if status == 404:
            return None
        return answer.get("data", answer) if isinstance(answer, dict) else answer

    def put(self, path, body=None):
        return self.request("PUT", path, body if body is not None else {})[1]

    def post(self, path, body=None):
        return self.request("POST", path, body if body is not None else {})[1]

    def delete(self, path):
        return self.request("DELETE", path)[1]

    def list(self, path):
        # GET with list=true rather than the LIST verb, which the API server's proxy does not pass.
        status, answer = self.request("GET", path + "?list=true", ok=(200, 404))
        return [] if status == 404 else sorted(answer["data"]["keys"])

    # --- seal ---------------------------------------------------------------------------------

    def seal_status(self):
        return self.request("GET", "sys/seal-status")[1]

    def init(self, options):
        return self.put("sys/init", options)

    def unseal_with(self, keys, threshold):
        """Submit ``threshold`` keys unless the server is already unsealed; True when it was sealed.

        A Raft server that has not joined its cluster yet reports no threshold of its own and
        joins with these keys, so it may still report sealed for a moment afterwards.
        """
        status = self.seal_status()
        if not status["sealed"]:
            return False
        if status.get("progress"):
            # A half-finished attempt (another operator, an interrupted run): start afresh.
            self.put("sys/unseal", {"reset": True})
        for key in keys[:status.get("t") or threshold]:
            if not self.put("sys/unseal", {"key": key})["sealed"]:
                break
        return True

    # --- root tokens --------------------------------------------------------------------------

    def generate_root(self, keys):
        """A new root token from the unseal (or recovery) keys, by the one-time-password flow."""
        try:
            status = self.get("sys/generate-root/attempt")
        except VaultError as error:
            if error.status != 405:
                raise
            raise VaultError("GET", "sys/generate-root/attempt", 405, json.dumps({"errors": [
                "this server does not offer the unauthenticated generate-root endpoints (OpenBao turns them off "
                "unless the listener sets disable_unauthed_generate_root_endpoints = false); give a token instead"]}))
        if status.get("started"):
            self.delete("sys/generate-root/attempt")
        attempt = self.put("sys/generate-root/attempt")
        otp, nonce, required = attempt["otp"], attempt["nonce"], attempt["required"]
        answer = {}
        for key in keys[:required]:
            answer = self.put("sys/generate-root/update", {"key": key, "nonce": nonce})
        if not answer.get("complete"):
            self.delete("sys/generate-root/attempt")
            raise VaultError("PUT", "sys/generate-root/update", 400, json.dumps({"errors": [
                "not complete after %d keys (required %d)" % (min(len(keys), required), required)]}))
        return decode_root_token(answer["encoded_token"], otp)

    def revoke_self(self):
        self.post("auth/token/revoke-self")


def decode_root_token(encoded, otp):
    """The token that generate-root encoded: base64 (padding optional) XOR the one-time password."""
    raw = encoded.strip()
    raw += "=" * (-len(raw) % 4)
    try:
        data = base64.b64decode(raw, validate=True)
    except ValueError:
        data = base64.urlsafe_b64decode(raw)
    secret = otp.encode("utf-8")
    if len(data) != len(secret):
        raise ValueError("generate-root: the encoded token is %d bytes, the one-time password %d"
                         % (len(data), len(secret)))
    return bytes(a ^ b for a, b in zip(data, secret)).decode("utf-8")


def wait_for(probe, timeout, interval=2.0, what="Vault"):
    """``probe()`` until it returns a true value or ``timeout`` seconds pass (then its last error)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (VaultError, OSError) as error:
            last = error
        if time.monotonic() >= deadline:
            raise TimeoutError("%s: not ready after %ds%s" % (what, timeout, ": %s" % last if last else ""))
        time.sleep(interval)

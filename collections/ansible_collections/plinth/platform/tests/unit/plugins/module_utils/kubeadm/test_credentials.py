# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Join credentials: read from kubeadm's output and checked for form, never shown."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import credentials, documents
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.plugins.module_utils.kubeadm.helpers import (
    CA_HASH, CERT_KEY, TOKEN, problems, spec_of)

__metaclass__ = type


def test_run_time_secrets_are_checked_without_showing_them():
    spec = spec_of()
    leaked = ["abcdef.ABCDEF0123456789", "sha256:abc", "0123"]
    errors = problems(documents.join_documents, spec, "cp-2", None, leaked[0], [leaked[1]], leaked[2],
                      control_plane=True)
    assert errors == [
        "token: got '<redacted, 23 characters>'; must be a bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}",
        "ca_cert_hashes[0]: got '<redacted, 10 characters>'; must be sha256: and 64 hexadecimal digits",
        "certificate_key: got '<redacted, 4 characters>'; must be 64 hexadecimal digits",
    ]
    errors = problems(documents.join_documents, spec, "worker-1")
    assert errors == [
        "token: got nothing; must be a bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}",
        "ca_cert_hashes: got nothing; must be one or more sha256:<64 hex digits> pins of the cluster CA",
    ]
    assert problems(documents.join_documents, spec, "worker-1", None, TOKEN, CA_HASH, CERT_KEY) == [
        "certificate_key: got '<redacted, 64 characters>'; is for control-plane joins only"]
    assert problems(documents.init_documents, spec, "cp-1", None, "xyz") == [
        "certificate_key: got '<redacted, 3 characters>'; must be 64 hexadecimal digits"]


JOIN_COMMAND = ("kubeadm join 10.0.0.10:6443 --token abcdef.0123456789abcdef "
                "--discovery-token-ca-cert-hash sha256:%s \n" % ("0a" * 32))


def test_join_credentials_from_kubeadm_output(production):
    upload = ("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n"
              "[upload-certs] Using certificate key:\n%s\n" % ("f0" * 32))
    found = credentials.join_credentials(JOIN_COMMAND, upload)
    assert found == {"token": "abcdef.0123456789abcdef", "ca_cert_hash": "sha256:" + "0a" * 32,
                     "certificate_key": "f0" * 32}
    assert set(credentials.join_credentials(JOIN_COMMAND)) == {"token", "ca_cert_hash"}
    # What it reads is what the join configuration accepts.
    documents.join_documents(build_spec(*production), "worker-1", {},
                             token=found["token"], ca_cert_hashes=found["ca_cert_hash"])


@pytest.mark.parametrize("command,upload,missing", [
    ("kubeadm join 10.0.0.10:6443 --discovery-token-ca-cert-hash sha256:00", None, "--token"),
    ("kubeadm join 10.0.0.10:6443 --token secret.value", None, "--discovery-token-ca-cert-hash"),
    (JOIN_COMMAND, "[upload-certs] Using certificate key:\n", "certificate key"),
])
def test_join_credentials_name_what_is_missing_and_show_nothing(command, upload, missing):
    with pytest.raises(ValueError) as exc:
        credentials.join_credentials(command, upload)
    message = str(exc.value)
    assert missing in message and "<redacted, " in message
    assert "secret" not in message and "f0f0" not in message

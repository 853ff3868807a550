# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Join credentials: read from kubeadm's own output, checked for form, never echoed.

Nothing here creates secret material.  Bootstrap tokens, CA pins and the
certificate key of ``kubeadm init --upload-certs`` are made on the hosts at run
time and passed in by the roles (under ``no_log``); an error names what is
wrong with them and shows nothing of their content.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

from ansible_collections.plinth.platform.plugins.module_utils import schema as s

__metaclass__ = type

BOOTSTRAP_TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
CA_CERT_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
CERTIFICATE_KEY = re.compile(r"^[0-9a-f]{64}$")


def redacted(value):
    """What an error may show of a secret: nothing of its content."""
    if value is None:
        return s.REQUIRED
    if isinstance(value, str):
        return "<redacted, %d characters>" % len(value)
    return "<redacted %s>" % type(value).__name__


def check_secret(name, value, pattern, rule, errors):
    if not isinstance(value, str) or not pattern.match(value):
        errors.add(name, redacted(value), rule)


def check_certificate_key(certificate_key, errors):
    check_secret("certificate_key", certificate_key, CERTIFICATE_KEY, "must be 64 hexadecimal digits", errors)


def checked_join_credentials(token, ca_cert_hashes, certificate_key, control_plane, errors):
    """The CA pins as a list, once the credentials of a join are checked.

    ``token`` is a bootstrap token (``kubeadm token create``), ``ca_cert_hashes``
    the ``sha256:`` pin(s) of the cluster CA, ``certificate_key`` the key the
    first control-plane host uploaded its certificates with (control plane only).
    """
    check_secret("token", token, BOOTSTRAP_TOKEN, "must be a bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}", errors)
    hashes = [ca_cert_hashes] if isinstance(ca_cert_hashes, str) else ca_cert_hashes
    if not isinstance(hashes, list) or not hashes:
        errors.add("ca_cert_hashes", redacted(ca_cert_hashes),
                   "must be one or more sha256:<64 hex digits> pins of the cluster CA")
    else:
        for index, pin in enumerate(hashes):
            if not isinstance(pin, str) or not CA_CERT_HASH.match(pin):
                errors.add("ca_cert_hashes[%d]" % index, redacted(pin), "must be sha256: and 64 hexadecimal digits")
    if control_plane:
        check_certificate_key(certificate_key, errors)
    elif certificate_key is not None:
        errors.add("certificate_key", redacted(certificate_key), "is for control-plane joins only")
    return hashes


# Credential -> the flag of `kubeadm join` that carries it.
JOIN_COMMAND_FLAGS = (("token", "--token"), ("ca_cert_hash", "--discovery-token-ca-cert-hash"))


def join_credentials(join_command, upload_certs_output=None):
    """``{token, ca_cert_hash[, certificate_key]}`` read from what kubeadm printed.

    ``join_command`` is the output of ``kubeadm token create --print-join-command``;
    ``upload_certs_output`` that of ``kubeadm init phase upload-certs --upload-certs``,
    whose last line of 64 hex digits is the key (control-plane joins only). Raises
    ValueError naming what is missing, never showing the output: it holds secrets.
    """
    text = join_command if isinstance(join_command, str) else ""
    found = {}
    for key, flag in JOIN_COMMAND_FLAGS:
        match = re.search(r"%s\s+(\S+)" % re.escape(flag), text)
        if not match:
            raise ValueError("the join command kubeadm printed has no %s (got %s)" % (flag, redacted(join_command)))
        found[key] = match.group(1)
    if upload_certs_output is not None:
        keys = [line.strip() for line in str(upload_certs_output).splitlines()
                if CERTIFICATE_KEY.match(line.strip())]
        if not keys:
            raise ValueError("kubeadm's upload-certs output has no certificate key (got %s)"
                             % redacted(upload_certs_output))
        found["certificate_key"] = keys[-1]
    return found

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""What the kubeadm tests share: a spec, stand-in credentials, documents by kind, problems."""

from __future__ import absolute_import, annotations, division, print_function

import base64
import copy

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import documents
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

__metaclass__ = type

# Stand-ins of the right form: the roles make the real ones on the hosts at run time.
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "0123456789abcdef" * 4
CERT_KEY = "fedcba9876543210" * 4
KEY = {"name": "key-1", "secret": base64.b64encode(b"k" * 32).decode("ascii")}
# The control_plane role's variables carry this prefix; the filters pass it on.
CONTROL_PLANE = "control_plane_"


def spec_of(env="production", edit=None):
    variables, groups, hostvars = copy.deepcopy(load_inventory(env))
    if edit is not None:
        edit(variables, groups, hostvars)
    return build_spec(variables, groups, hostvars)


def by_kind(docs):
    kinds = [d["kind"] for d in docs]
    assert len(set(kinds)) == len(kinds), kinds
    return dict((d["kind"], d) for d in docs)


def init(env="production", host=None, options=None, edit=None, **kw):
    spec = spec_of(env, edit)
    host = host or spec["control_plane"]["hosts"][0]
    return by_kind(documents.init_documents(spec, host, options, **kw))


def join(host, env="production", options=None, control_plane=False, edit=None):
    spec = spec_of(env, edit)
    docs = documents.join_documents(spec, host, options, token=TOKEN, ca_cert_hashes=CA_HASH,
                                    certificate_key=CERT_KEY if control_plane else None,
                                    control_plane=control_plane)
    assert [d["kind"] for d in docs] == ["JoinConfiguration"]
    return docs[0]


def args(component):
    return dict((a["name"], a["value"]) for a in component.get("extraArgs", []))


def problems(function, *a, **kw):
    with pytest.raises(SpecError) as exc:
        function(*a, **kw)
    return exc.value.errors

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""What the component tests share: a spec built with some options changed, a release's output, errors.

An inventory is the ``(variables, groups, hostvars)`` triple of the ``production`` fixture; a
component is named by its key under ``plinth_components`` (``"vault"``, ``"rook_ceph"``...).
"""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.module_utils.components import registry
from ansible_collections.plinth.platform.plugins.module_utils.schema import Errors, SpecError
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec

__metaclass__ = type

DEDICATED = {"key": "dedicated", "value": "platform", "effect": "NoSchedule"}


# --- the inventory in, the spec out -----------------------------------------------

def options(inventory, key):
    """The inventory's settings of component ``key``, created empty if absent, to edit in place."""
    return inventory[0]["plinth_components"].setdefault(key, {})


def taint_workers(inventory, value="platform", labels=None):
    """The inventory, its worker pool tainted ``dedicated=<value>:NoSchedule`` alone (DEDICATED by
    default) and relabelled with ``labels`` if given.

    Consul's gossip-key Job takes no tolerations: a test that builds with this pool and is not about
    Consul passes ``consul={"gossip_encryption": "none"}``.
    """
    pool = inventory[0]["plinth_node_pools"]["worker"]
    pool["taints"] = [dict(DEDICATED, value=value)]
    if labels is not None:
        pool["labels"] = labels
    return inventory


def build(inventory, **options_by_component):
    """The spec of ``inventory`` once each ``key={option: value}`` is merged into that component."""
    for key, changes in options_by_component.items():
        options(inventory, key).update(changes)
    return build_spec(*inventory)


def spec_errors(inventory, **options_by_component):
    """The messages of the SpecError that ``build`` must raise."""
    with pytest.raises(SpecError) as caught:
        build(inventory, **options_by_component)
    return caught.value.errors


def check_errors(spec, key):
    """The messages of component ``key``'s own cross-checks on an already built (and edited) spec."""
    errors = Errors()
    component(key).check(spec, spec["components"][key], errors, "plinth_components." + key)
    return errors.items


# --- what a component renders -------------------------------------------------------

def component(key):
    """The Component declared under ``key``."""
    [found] = [c for c in registry() if c.key == key]
    return found


def release(key, name=None):
    """A release of component ``key``: the one named ``name``, or the only one that has values."""
    releases = component(key).releases
    if name is None:
        [found] = [r for r in releases if r.values]
    else:
        [found] = [r for r in releases if r.name == name]
    return found


def values_of(spec, key, release_name=None):
    """The Helm values of a release of component ``key`` (see ``release``)."""
    return release(key, release_name).values(spec, spec["components"][key])


def manifests_of(spec, key, release_name=None):
    """The raw manifests of one release of component ``key``, or of all its releases in order."""
    releases = component(key).releases if release_name is None else [release(key, release_name)]
    settings = spec["components"][key]
    return [doc for r in releases if r.manifests for doc in r.manifests(spec, settings)]


# --- looking into documents ------------------------------------------------------------

def of_kind(docs, kind):
    """The documents of one kind."""
    return [d for d in docs if d["kind"] == kind]


def names_of(docs, kind):
    """The sorted names of the documents of one kind."""
    return sorted(d["metadata"]["name"] for d in of_kind(docs, kind))


def find(docs, kind, name=None):
    """The one document of ``kind`` (named ``name``, if given); fails unless there is exactly one."""
    found = [d for d in of_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [(d["kind"], d["metadata"]["name"]) for d in docs])
    return found[0]


def network_policy(docs, name):
    """The spec of the NetworkPolicy ``name``."""
    return find(docs, "NetworkPolicy", name)["spec"]


def _walk(value, leaves):
    if isinstance(value, dict):
        for key, sub in value.items():
            yield key
            yield from _walk(sub, leaves)
    elif isinstance(value, list):
        for sub in value:
            yield from _walk(sub, leaves)
    elif leaves and isinstance(value, str):
        yield value


def keys(value):
    """Every mapping key in a structure of dicts and lists, at any depth."""
    return _walk(value, leaves=False)


def strings(value):
    """Every string in a structure of dicts and lists: the mapping keys and the string values."""
    return _walk(value, leaves=True)

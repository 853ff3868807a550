# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Filters over the platform spec; the logic lives in module_utils."""

from __future__ import absolute_import, annotations, division, print_function

from ansible.errors import AnsibleFilterError

from ansible_collections.plinth.platform.plugins.module_utils import gitops
from ansible_collections.plinth.platform.plugins.module_utils.components import registry
from ansible_collections.plinth.platform.plugins.module_utils.plain import plain
from ansible_collections.plinth.platform.plugins.module_utils.schema import SpecError
from ansible_collections.plinth.platform.plugins.module_utils.secret_access import secret_access
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec, host_addresses

__metaclass__ = type


def _address_in(hostvars):
    def address_of(host):
        try:
            return hostvars[host].get("ansible_host")
        except (KeyError, TypeError, AttributeError):
            return None
    return address_of


def platform_spec(variables, groups, hostvars=None):
    try:
        return build_spec(variables, groups, host_addresses(groups, _address_in(hostvars or {})))
    except SpecError as exc:
        raise AnsibleFilterError(str(exc))


def _need_spec(spec, name):
    """The spec as plain data: Ansible hands it back with its own tagged types, which YAML refuses."""
    if not isinstance(spec, dict) or "components" not in spec or "environment" not in spec:
        raise AnsibleFilterError("%s expects the output of plinth.platform.platform_spec, got %s"
                                 % (name, type(spec).__name__))
    return plain(spec)


def gitops_files(spec):
    return gitops.render(_need_spec(spec, "gitops_files"))


def argocd_documents(spec):
    return gitops.argocd_documents(_need_spec(spec, "argocd_documents"))


def vault_access(spec):
    return secret_access(_need_spec(spec, "vault_access"))


def gitops_summary(spec):
    return gitops.summary(_need_spec(spec, "gitops_summary"))


def helm_values(spec, release):
    spec = _need_spec(spec, "helm_values")
    for component in registry():
        for candidate in component.releases:
            if candidate.name == release:
                if candidate.values is None:
                    raise AnsibleFilterError("release %r has no Helm values (raw manifests only)" % release)
                return gitops.release_values(spec, candidate, spec["components"][component.key])
    known = sorted(r.name for c in registry() for r in c.releases if r.values is not None)
    raise AnsibleFilterError("unknown release %r (known: %s)" % (release, ", ".join(known)))


def helm_release(spec, release, chart_root=None):
    try:
        return gitops.helm_release(_need_spec(spec, "helm_release"), release, chart_root)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def widened_projects(rendered, live):
    """AppProjects as rendered, each also admitting what its live copy admits (see gitops.widened_projects)."""
    return gitops.widened_projects(plain(rendered), plain(live))


def sync_waves(spec):
    return gitops.sync_waves(_need_spec(spec, "sync_waves"))


class FilterModule(object):
    def filters(self):
        return {
            "platform_spec": platform_spec,
            "gitops_files": gitops_files,
            "argocd_documents": argocd_documents,
            "gitops_summary": gitops_summary,
            "helm_values": helm_values,
            "helm_release": helm_release,
            "sync_waves": sync_waves,
            "widened_projects": widened_projects,
            "vault_access": vault_access,
        }

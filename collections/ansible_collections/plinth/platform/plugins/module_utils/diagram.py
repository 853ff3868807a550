# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""A picture of one environment: ``clusters/<env>/README.md``, with Mermaid diagrams.

``environment_readme(spec)`` draws what the spec says and nothing else: the node
pools with their hosts, labels and taints and what is placed on each, the sync
waves in the order Argo CD applies them, and the path from Vault to each
namespace's Secrets.  Git hosts render Mermaid blocks in Markdown, so a reader
sees the platform without reading YAML.

The text depends on the spec alone (sorted, no timestamps): the file changes
only when the platform does.  Every name from the inventory is escaped before it
reaches a diagram, and node ids are made from a fixed alphabet, so no name can
end a block, a label or a subgraph early.
"""

from __future__ import absolute_import, annotations, division, print_function

import re

from ansible_collections.plinth.platform.plugins.module_utils import gitops, placement, secret_access
from ansible_collections.plinth.platform.plugins.module_utils.components import external_secrets, registry, vault

__metaclass__ = type

# Beyond this many names a list in a box is cut short: the tree may hold thousands of apps.
MAX_NAMES_SHOWN = 24
BREAK = "<br/>"
# Mermaid reads "#<code>;" as a character entity: whatever could close a quoted label, open
# HTML markup or end the Markdown fence becomes one.
_ESCAPED = dict((char, "#%d;" % ord(char)) for char in '#"<>&`')
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!<>|])")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def text(value):
    """``value`` as the text of a quoted Mermaid label."""
    line = " ".join(str(value).split())
    return "".join(_ESCAPED.get(char, char) for char in line)


def label(*lines):
    """A quoted label of several lines, each escaped."""
    return '"%s"' % BREAK.join(text(line) for line in lines if line is not None)


class Ids:
    """Mermaid node ids for names: letters, digits and '_' only, unique within one diagram."""

    def __init__(self):
        self._given = {}
        self._used = set()

    def __call__(self, kind, name):
        key = (kind, name)
        if key not in self._given:
            base = "%s_%s" % (kind, _ID_UNSAFE.sub("_", str(name))) if name != "" else kind
            found, count = base, 1
            while found in self._used:
                count += 1
                found = "%s_%d" % (base, count)
            self._used.add(found)
            self._given[key] = found
        return self._given[key]


def _taint(taint):
    value = taint.get("value")
    return "%s%s:%s" % (taint["key"], "=%s" % value if value else "", taint["effect"])


def _labels_line(labels):
    return "labels " + (", ".join("%s=%s" % item for item in sorted(labels.items())) or "none")


def _taints_line(taints):
    return "taints " + (", ".join(sorted(_taint(t) for t in taints)) or "none")


def _hosts_line(hosts):
    return "hosts " + (", ".join(sorted(hosts)) or "none")


def _placed_components(spec):
    """pool name (None: every node) -> [(key, title, namespace, release names)], enabled only."""
    placed = {}
    for component in registry():
        settings = spec["components"][component.key]
        if settings["enabled"]:
            placed.setdefault(settings.get("pool"), []).append(
                (component.key, component.title, settings["namespace"],
                 [release.name for release in component.releases]))
    return placed


def _placed_apps(spec):
    placed = {}
    for app in spec["apps"]:
        placed.setdefault(app.get("pool"), []).append(app["name"])
    return placed


def _names(names):
    """Sorted ``names``, comma separated, at most MAX_NAMES_SHOWN of them."""
    names = sorted(names)
    shown = ", ".join(names[:MAX_NAMES_SHOWN])
    if len(names) > MAX_NAMES_SHOWN:
        shown += " and %d more" % (len(names) - MAX_NAMES_SHOWN)
    return shown


def _apps_line(names):
    return "%d business app%s" % (len(names), "" if len(names) == 1 else "s"), _names(names)


def _members(ids, pool_name, components, apps):
    lines = []
    for key, title, namespace, releases in sorted(components):
        lines.append("    %s[%s]" % (ids("component", key), label(
            title, "component %s, namespace %s" % (key, namespace), "releases " + ", ".join(releases))))
    if apps:
        lines.append("    %s[%s]" % (ids("apps", pool_name or ""), label(*_apps_line(apps))))
    return lines


def _control_plane_subgraph(spec, ids):
    taint = placement.CONTROL_PLANE_TAINT
    cp = spec["control_plane"]
    return [
        "  subgraph %s [%s]" % (ids("control_plane", ""), label("control plane, group %s" % cp["group"])),
        "    direction TB",
        "    %s[%s]" % (ids("control_plane_nodes", ""), label(
            _hosts_line(cp["hosts"]), "label %s" % placement.CONTROL_PLANE_LABEL,
            "taint %s:%s" % (taint["key"], taint["effect"]))),
        "  end",
    ]


def _pool_subgraph(spec, ids, name, components, apps):
    pool = spec["node_pools"].get(name)
    if pool is None:  # validation refuses it; drawn anyway so the picture never hides a placement
        head, facts = "pool %s, not declared" % name, ["no such node pool"]
    else:
        head = "pool %s, group %s" % (name, pool["group"])
        facts = [_hosts_line(pool["hosts"]), _labels_line(pool["labels"]), _taints_line(pool["taints"])]
    lines = ["  subgraph %s [%s]" % (ids("pool", name), label(head)),
             "    direction TB",
             "    %s[%s]" % (ids("nodes", name), label(*facts))]
    return lines + _members(ids, name, components, apps) + ["  end"]


def placement_chart(spec):
    """A flowchart: the control plane, each node pool, and what runs on every node, as subgraphs."""
    ids = Ids()
    components = _placed_components(spec)
    apps = _placed_apps(spec)
    lines = ["flowchart TB"] + _control_plane_subgraph(spec, ids)
    pools = sorted(set(spec["node_pools"]) | set(k for k in components if k) | set(k for k in apps if k))
    for name in pools:
        lines += _pool_subgraph(spec, ids, name, components.get(name, []), apps.get(name, []))
    everywhere = components.get(None, []) or apps.get(None, [])
    if everywhere:
        title = label("runs everywhere: every pool and the control plane")
        lines += ["  subgraph %s [%s]" % (ids("everywhere", ""), title), "    direction TB"]
        lines += _members(ids, None, components.get(None, []), apps.get(None, []))
        lines += ["  end"]
    return lines


def waves_chart(spec, built=None):
    """A flowchart of the sync waves, lowest first: Argo CD waits for each before the next."""
    ids = Ids()
    lines = ["flowchart LR"]
    previous = None
    for wave in gitops.sync_waves(spec, built):
        node = ids("wave", wave["wave"])
        lines.append("  %s[%s]" % (node, label("wave %d" % wave["wave"], _names(wave["applications"]))))
        if previous:
            lines.append("  %s --> %s" % (previous, node))
        previous = node
    return lines


def _store_of(external_secret):
    """``(kind, name)`` of the store an ExternalSecret reads: its namespace's SecretStore or a ClusterSecretStore."""
    ref = (external_secret.get("spec") or {}).get("secretStoreRef") or {}
    return ref.get("kind") or "SecretStore", ref.get("name") or ""


def _readers(spec, built=None):
    """``(readers, cluster stores)`` of the tree's ExternalSecrets.

    ``readers``: namespace -> (store kind, store name) -> {"names", "targets", "paths"}, each sorted;
    ``cluster stores``: name -> the ClusterSecretStore document the tree holds, if any.  Read from the
    same raw manifests as ``secret_access.secret_access``, which the Vault roles and policies are made
    from, so the picture shows what Vault admits.
    """
    found, cluster_stores = {}, {}
    for doc in gitops.raw_manifests(spec, built):
        if doc["kind"] == "ClusterSecretStore":
            cluster_stores[doc["metadata"]["name"]] = doc
        if doc["kind"] != "ExternalSecret":
            continue
        by_store = found.setdefault(doc["metadata"]["namespace"], {})
        entry = by_store.setdefault(_store_of(doc), {"names": set(), "targets": set(), "paths": set()})
        entry["names"].add(doc["metadata"]["name"])
        entry["targets"].add(((doc.get("spec") or {}).get("target") or {}).get("name") or doc["metadata"]["name"])
        entry["paths"].update(secret_access.remote_keys(doc))
    readers = dict((namespace, dict((store, dict((k, sorted(v)) for k, v in entry.items()))
                                    for store, entry in by_store.items()))
                   for namespace, by_store in found.items())
    return readers, cluster_stores


def _vault(spec, ids):
    settings = spec["components"]["external_secrets"]
    return "  %s[(%s)]" % (ids("vault", ""), label(
        "Vault %s" % vault.address(spec), "KV v2 engine at %s/" % settings["vault_kv_path"],
        "clients log in with Kubernetes auth at %s/" % external_secrets.VAULT_AUTH_MOUNT))


def _cluster_store(ids, name, doc):
    """A source node for ClusterSecretStore ``name``: its provider, service and region when the tree holds it."""
    facts = []
    for provider, settings in sorted(((doc or {}).get("spec") or {}).get("provider", {}).items()):
        settings = settings if isinstance(settings, dict) else {}
        facts.append(" ".join(str(settings[k]) for k in ("service", "region") if settings.get(k)))
        facts[-1] = ("%s %s" % (provider, facts[-1])).strip()
    return "  %s[(%s)]" % (ids("cluster_store", name), label("ClusterSecretStore %s" % name, *facts))


def _namespace_readers(spec, ids, namespace, by_store):
    """The subgraph of one namespace and the edges from each source into it."""
    settings = spec["components"]["external_secrets"]
    nodes, edges = [], []
    for (kind, name), entry in sorted(by_store.items()):
        key = namespace if kind == "SecretStore" else "%s from %s" % (namespace, name)
        read_id, made_id = ids("reads", key), ids("made", key)
        reads = ["ExternalSecret " + _names(entry["names"])]
        if kind == "SecretStore":
            store_id = ids("store", key)
            nodes.append("    %s[%s]" % (store_id, label(
                "SecretStore %s" % name, "Vault role %s" % external_secrets.role(spec, namespace),
                "as ServiceAccount %s" % settings["reader_service_account"])))
            edges.append("  %s --> %s --> %s --> %s" % (ids("vault", ""), store_id, read_id, made_id))
            reads.append("paths " + _names(entry["paths"]))
        else:
            edges.append("  %s --> %s --> %s" % (ids("cluster_store", name), read_id, made_id))
            reads.append("keys " + _names(entry["paths"]))
        nodes += ["    %s[%s]" % (read_id, label(*reads)),
                  "    %s[%s]" % (made_id, label("Secret " + _names(entry["targets"])))]
    head = "  subgraph %s [%s]" % (ids("namespace", namespace), label("namespace %s" % namespace))
    return [head] + nodes + ["  end"] + edges


def secrets_chart(spec, built=None):
    """A flowchart from each secret source (Vault, cloud ClusterSecretStores) through each namespace's
    stores and ExternalSecrets to its Secrets.

    None when the tree holds no ExternalSecret.
    """
    readers, cluster_stores = _readers(spec, built)
    if not readers:
        return None
    ids = Ids()
    stores = set(store for by_store in readers.values() for store in by_store)
    lines = ["flowchart LR"]
    if any(kind == "SecretStore" for kind, _name in stores):
        lines.append(_vault(spec, ids))
    for name in sorted(name for kind, name in stores if kind != "SecretStore"):
        lines.append(_cluster_store(ids, name, cluster_stores.get(name)))
    for namespace, by_store in sorted(readers.items()):
        lines += _namespace_readers(spec, ids, namespace, by_store)
    return lines


def _block(lines):
    return "```mermaid\n%s\n```\n" % "\n".join(lines)


def environment_readme(spec, built=None):
    """The Markdown text of ``clusters/<env>/README.md``; ``built``: what ``gitops.build(spec)`` returned."""
    env = _MARKDOWN.sub(r"\\\1", " ".join(spec["environment"].split()))
    parts = [
        "# Platform: %s\n" % env,
        "Generated by Plinth from the %s inventory: do not edit by hand, change the inventory and "
        "render again. It changes only when the platform does.\n" % env,
        "## Node pools and what runs on them\n",
        "Each box is a node pool (or the control plane) with its hosts, labels and taints, and the "
        "components placed on it; the last box holds what runs on every node.\n",
        _block(placement_chart(spec)),
        "## Sync waves\n",
        "Argo CD applies the Applications one wave after another, lowest first, each wave once the "
        "previous one is healthy.\n",
        _block(waves_chart(spec, built)),
        "## Where secrets come from\n",
    ]
    chart = secrets_chart(spec, built)
    if chart is None:
        parts.append("Nothing in this environment reads Vault: the tree holds no ExternalSecret.\n")
    else:
        parts += ["The tree holds no secret value. In each namespace that needs one, a SecretStore logs in "
                  "to Vault with that namespace's own role, and ExternalSecrets copy the paths it may read "
                  "into Kubernetes Secrets.\n", _block(chart)]
    return "\n".join(parts)

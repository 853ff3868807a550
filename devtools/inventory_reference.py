"""Write docs/inventory.md from the inventory schema, so the reference never drifts.

    python -m devtools.inventory_reference [--check]
"""

import json
import os
import sys

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils import spec
from ansible_collections.plinth.platform.plugins.module_utils.components import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TARGET = os.path.join(ROOT, "docs", "inventory.md")
KIND = {"str": "string", "int": "integer", "bool": "boolean", "float": "number", "dict": "mapping",
        "map": "mapping", "list": "list", "any": "any"}

INTRO = """# Inventory reference

Generated from the schema in `plugins/module_utils/spec.py` and the component modules by
`devtools/inventory_reference.py`; `make test` fails when it is out of date.

Every variable below is checked before anything is rendered or any host is touched. Unknown
keys are errors, so a typo never passes silently. Where a default is shown the key may be
left out.
"""


def default_text(field):
    if field.default is s.REQUIRED:
        return "**required**" if not (field.kind == "dict" and s._all_defaulted(field)) else ""
    if field.default is None:
        return "none"
    return "`%s`" % json.dumps(field.default, sort_keys=True)


def rules(field):
    out = []
    if field.choices:
        out.append("one of " + ", ".join("`%s`" % c for c in field.choices))
    if field.minimum is not None:
        out.append(">= %s" % field.minimum)
    if field.maximum is not None:
        out.append("<= %s" % field.maximum)
    for check in field.checks:
        out.append(check.__name__.replace("_", " "))
    return out


def rows(path, field):
    doc = " ".join([field.doc] if field.doc else [])
    text = "; ".join(filter(None, [doc, ", ".join(rules(field))]))
    yield "| `%s` | %s | %s | %s |" % (path, KIND[field.kind], default_text(field), text)
    if field.kind == "dict":
        for key, sub in field.fields.items():
            yield from rows("%s.%s" % (path, key), sub)
    elif field.kind == "list" and field.items is not None and field.items.kind == "dict":
        for key, sub in field.items.fields.items():
            yield from rows("%s[].%s" % (path, key), sub)
    elif field.kind == "map" and field.values is not None and field.values.kind == "dict":
        for key, sub in field.values.fields.items():
            yield from rows("%s.<name>.%s" % (path, key), sub)


def render():
    out = [INTRO]
    header = ["| variable | type | default | rules |", "|---|---|---|---|"]
    top = spec._top_fields()
    out += ["## Cluster and node pools", ""] + header
    for name in ("plinth_environment", "plinth_cluster_name", "plinth_kubernetes_version",
                 "plinth_control_plane_endpoint", "plinth_control_plane_group", "plinth_cluster_group",
                 "plinth_pod_cidr", "plinth_service_cidr", "plinth_node_pools", "plinth_gitops"):
        out += list(rows(name, top[name]))
    components = top["plinth_components"]
    for component in registry():
        charts = ", ".join("%s `%s` %s" % (r.name, r.chart["name"], r.chart["version"])
                           for r in component.releases if r.chart)
        out += ["", "## %s: `plinth_components.%s`" % (component.title, component.key), ""]
        out += ["Namespace `%s`, Argo CD project `%s`, default pool `%s`. %s" % (
            component.namespace, component.project, component.pool,
            ("Charts: " + charts + ".") if charts else "Raw manifests, no chart.")]
        if component.doc:
            out += ["", component.doc]
        out += [""] + header
        for key, sub in components.fields[component.key].fields.items():
            out += list(rows("%s" % key, sub))
    out += ["", "## Business apps: `plinth_apps`", ""] + header
    out += list(rows("plinth_apps[]", top["plinth_apps"].items))[1:]
    return "\n".join(out) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        with open(TARGET) as handle:
            if handle.read() != text:
                sys.exit("docs/inventory.md is out of date: run python -m devtools.inventory_reference")
        return
    os.makedirs(os.path.dirname(TARGET), exist_ok=True)
    with open(TARGET, "w") as handle:
        handle.write(text)


if __name__ == "__main__":
    main(sys.argv[1:])

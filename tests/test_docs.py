"""The generated inventory reference matches the schema it documents."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_inventory_reference_is_up_to_date():
    result = subprocess.run([sys.executable, "-m", "devtools.inventory_reference", "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_names_every_component_release():
    from ansible_collections.plinth.platform.plugins.module_utils.components import registry
    with open(os.path.join(ROOT, "README.md")) as handle:
        readme = handle.read()
    missing = [r.name for c in registry() for r in c.releases if r.name not in readme]
    assert not missing, "README's wave table lacks %s" % missing

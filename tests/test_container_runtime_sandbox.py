"""The sandbox (pause) image follows the Kubernetes release, and an unknown release is refused.

Both run the real role files through ansible-playbook on the controller: the mapping through
the role's own defaults and variables, the refusal through the role itself, which must stop
at its first check, before it installs or writes anything.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLE = os.path.join(ROOT, "roles", "container_runtime")
PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def _play(tmp_path, play, variables, *extra):
    path = tmp_path / "play.yml"
    path.write_text(json.dumps([play]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"))
    variables = dict(variables, ansible_python_interpreter=sys.executable)
    return subprocess.run([PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", json.dumps(variables), str(path)] + list(extra),
                          capture_output=True, text=True, env=env, timeout=120, cwd=str(tmp_path))


@pytest.mark.parametrize("release, extra, image", [
    ("1.35.4", {}, "registry.k8s.io/pause:3.10.1"),
    ("v1.36.3", {}, "registry.k8s.io/pause:3.10.2"),
    ("1.37.0", {}, ""),
    ("1.37.0", {"container_runtime_sandbox_image": "mirror.example:5000/pause:3.11"}, "mirror.example:5000/pause:3.11"),
])
def test_the_sandbox_image_follows_the_release(tmp_path, release, extra, image):
    out = tmp_path / "sandbox"
    play = {"hosts": "localhost", "gather_facts": False,
            "vars_files": [os.path.join(ROLE, "defaults", "main.yml"), os.path.join(ROLE, "vars", "main.yml")],
            "tasks": [{"ansible.builtin.copy": {"content": "{{ __container_runtime_sandbox }}", "dest": str(out)}}]}
    result = _play(tmp_path, play, dict(extra, plinth_kubernetes_version=release))
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == image


def test_an_unknown_release_is_refused_before_anything_is_installed(tmp_path):
    play = {"hosts": "localhost", "gather_facts": False, "roles": ["container_runtime"]}
    result = _play(tmp_path, play, {"plinth_kubernetes_version": "1.37.0"}, "--check")
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, output
    assert ('container_runtime_sandbox_image is "" and Kubernetes 1.37.0 is none of the releases whose sandbox image '
            'this role knows (1.35, 1.36)') in output, output
    # The refusal is the role's first check: no task ran after it, and nothing changed.
    assert "TASK [" not in output.split("Require a sandbox image for the Kubernetes release", 1)[1], output
    assert "changed=0" in output and "failed=1" in output, output

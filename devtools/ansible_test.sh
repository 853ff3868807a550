#!/usr/bin/env bash
# ansible-test for the plinth.platform collection, with the local Python only
# and nothing fetched but from PyPI:
#   devtools/ansible_test.sh sanity [ansible-test options...]
#   devtools/ansible_test.sh units  [ansible-test options...]
# Sanity tests run in ansible-test's own virtual environments (cached under
# ~/.ansible/test/venv, their packages from PyPI); units run in the project's
# venv, which requirements.txt fills (pytest, pytest-xdist).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COLLECTION=$ROOT/collections/ansible_collections/plinth/platform
VENV=${VENV:-$ROOT/.venv}
PYTHON_VERSION=${PLINTH_TEST_PYTHON:-3.11}

if [ $# -lt 1 ]; then
  echo "usage: $0 sanity|units [ansible-test options...]" >&2
  exit 2
fi
command=$1
shift

export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
unset PYTHONPATH  # ansible-test finds the collection from the working directory

# ansible-test downloads get-pip.py from a site outside PyPI: give it one that uses PyPI's pip.
(cd "$ROOT" && python -m devtools.ansible_test_pip)

cd "$COLLECTION"
case $command in
  sanity)
    exec ansible-test sanity --python "$PYTHON_VERSION" --color no "$@"
    ;;
  units)
    exec ansible-test units --python "$PYTHON_VERSION" --color no "$@"
    ;;
  *)
    echo "unknown command $command (sanity or units)" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Lint the whole repository: yamllint (.yamllint) then ansible-lint (.ansible-lint,
# profile production). Both run offline: ansible-lint finds plinth.platform through
# ansible.cfg's collections_path and kubernetes.core in the `ansible` package.
#   devtools/lint.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
export ANSIBLE_NOCOLOR=1 NO_COLOR=1
cd "$ROOT"

status=0
echo "==> yamllint"
yamllint --strict --format parsable . || status=1
echo "==> ansible-lint"
ansible-lint --nocolor || status=1
exit $status

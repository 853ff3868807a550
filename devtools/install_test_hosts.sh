#!/usr/bin/env bash
# Install what the real-host test scenarios need on the test machine (Debian):
# systemd-nspawn, debootstrap, namespace and SSH tools, and the repository tools
# the nodes scenario uses to serve a signed package repository, and the redis-server
# that the test Argo CD (testbed/testargocd.py) caches in, socat, which carries each
# connection of testbed/forward.py into a network namespace (systemd-socket-activate, its
# listener, comes with systemd), and jq, which the backup retention job's script runs with in
# tests/cluster as in its image. Needs root.
set -euo pipefail
missing=()
for tool in systemd-nspawn:systemd-container debootstrap:debootstrap ip:iproute2 ssh:openssh-client \
            nc:netcat-openbsd dpkg-scanpackages:dpkg-dev gpg:gnupg redis-server:redis-server \
            socat:socat jq:jq; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -q -y --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null 2>&1 || { echo "the go tool is missing: the scenario builds kubeadm, kubelet and kubectl from Go modules" >&2; exit 1; }

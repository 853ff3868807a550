"""Plinth's test harness: real Debian hosts (systemd-nspawn in network namespaces), a real
control plane on loopback, a real Argo CD, the operators' stand-ins and the local lab. Each
tool runs from the repository root: ``python -m testbed.testhosts``, ``python -m testbed.lab``, ...

It builds its binaries with ``airgap``; the developer tools (``devtools``) drive it.
"""

"""Plinth's air-gapped artifact toolchain: what a site without internet access needs, built
from Go modules and served from its own mirror. Each tool runs from the repository root:
``python -m airgap.build_kubernetes``, ``python -m airgap.artifact_mirror``, ...

The test harness (``testbed``) and the developer tools (``devtools``) build on this package;
it imports neither.
"""

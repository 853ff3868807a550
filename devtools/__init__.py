"""Developer entry points: the staged test runner (``python -m devtools.test``), the
benchmarks (``python -m devtools.bench``), the inventory reference, ``make acceptance`` and
the shell scripts that install, lint and run ansible-test. They drive ``testbed`` and ``airgap``.
"""

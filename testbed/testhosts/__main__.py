"""python -m testbed.testhosts: the command line (see the package's docstring)."""

from testbed.testhosts.commands import main

main()

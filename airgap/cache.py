"""The one build cache every tool shares: $PLINTH_CACHE, else ~/.cache/plinth.

Never inside the repository: a build takes minutes and outlives checkouts.
"""

import os


def root():
    return os.environ.get("PLINTH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "plinth")

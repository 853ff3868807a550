#!/usr/bin/env python3
"""Ask a URL again and again until a stop file appears; write what answered and what did not.

    count_requests.py URL STOP_FILE RESULT_FILE

Runs on a lab host while playbooks/upgrade.yml drains and upgrades every node: each request has
2 s to answer with HTTP 200, and the result file lists every one that did not, with its time.
"""

import json
import os
import sys
import time
import urllib.request


def main(url, stop, result):
    answered, failures, started = 0, [], time.time()
    while not os.path.exists(stop):
        began = time.time()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                if response.status != 200:
                    raise OSError("HTTP %d" % response.status)
            answered += 1
        except OSError as exc:
            failures.append({"at": round(began - started, 2), "error": str(exc)})
        time.sleep(max(0.0, 0.1 - (time.time() - began)))
    with open(result + ".tmp", "w") as handle:
        json.dump({"answered": answered, "failed": len(failures), "failures": failures[:50],
                   "seconds": round(time.time() - started, 1)}, handle)
    os.rename(result + ".tmp", result)


if __name__ == "__main__":
    main(*sys.argv[1:4])

#!/usr/bin/env python3
"""Run a bootstrap command and kill it while one lab host runs `kubeadm join`.

    kill_during_join.py --prefix P --host NAME [--timeout S] -- COMMAND...

Starts COMMAND (ansible-playbook site.yml ...) in a process group of its own, polls the
host (through testbed/testhosts exec) until `kubeadm join` runs there and has written
/etc/kubernetes/bootstrap-kubelet.conf (the kubelet's TLS bootstrap has begun), then kills
the whole command with SIGKILL and the host's kubeadm too, as a crashed controller or a
power cut would leave it: a half-joined node. Exits 0 only when the kill happened during
the join; the command's output goes to stdout.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

from testbed import lab  # the repository root is on PYTHONPATH (side_effect.yml)

# kubeadm join runs and has begun the kubelet's TLS bootstrap.
MID_JOIN = "pgrep -f 'kubeadm join' >/dev/null && test -e /etc/kubernetes/bootstrap-kubelet.conf"


def on_host(args, *command):
    return subprocess.run(lab.testhosts(args, "exec", args.host, "--", *command),
                          capture_output=True, text=True, timeout=30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    bootstrap = subprocess.Popen(command, start_new_session=True)
    deadline = time.monotonic() + args.timeout
    while bootstrap.poll() is None and time.monotonic() < deadline:
        if on_host(args, "sh", "-c", MID_JOIN).returncode == 0:
            os.killpg(bootstrap.pid, signal.SIGKILL)
            bootstrap.wait()
            on_host(args, "pkill", "-KILL", "-f", "kubeadm join")
            left = on_host(args, "ls", "/etc/kubernetes").stdout.split()
            print("killed the bootstrap and %s's kubeadm join; /etc/kubernetes holds %s" % (args.host, left),
                  flush=True)
            return 0
        time.sleep(0.2)
    if bootstrap.poll() is None:
        os.killpg(bootstrap.pid, signal.SIGKILL)
        sys.exit("kubeadm join never started on %s within %d s" % (args.host, args.timeout))
    sys.exit("the bootstrap ended (exit %d) before kubeadm join ran on %s" % (bootstrap.returncode, args.host))


if __name__ == "__main__":
    sys.exit(main())

"""Run Plinth's whole test suite, stage by stage, and end with one tally line.

    python -m devtools.test [stage ...]      stages: unit sanity units lint molecule nodes cluster secrets gitops lab
                                            (default: all of them)

Pytest-based stages count their test cases (read from JUnit XML); other stages
count as one test each. The last line reads ``N passed, N failed``.
"""

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import yaml

from airgap.build_kubernetes import ETCD_BINARY, KUBERNETES_BINARIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def env():
    e = dict(os.environ)
    e["PATH"] = BIN + os.pathsep + e.get("PATH", "")
    # The repository's packages (airgap, testbed, devtools) and the collection, for every
    # stage and each process it starts.
    e["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "collections")])
    e["ANSIBLE_CONFIG"] = os.path.join(ROOT, "ansible.cfg")
    e.setdefault("ANSIBLE_NOCOLOR", "1")
    e.setdefault("PY_COLORS", "0")
    return e


def pytest_stage(args):
    def run():
        with tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "junit.xml")
            code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                    "--junitxml", report] + args, cwd=ROOT, env=env())
            if not os.path.exists(report):
                return 0, 1
            suite = ET.parse(report).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            total = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            if code not in (0, 1) and bad == 0:
                bad = 1
            return total - bad - skipped, bad
    return run


def command_stage(*cmd, **kw):
    def run():
        code = subprocess.call(list(cmd), cwd=kw.get("cwd", ROOT), env=env())
        return (1, 0) if code == 0 else (0, 1)
    return run


def stages(*runs):
    """One stage made of several runs, counted together."""
    def run():
        results = [one() for one in runs]
        return sum(r[0] for r in results), sum(r[1] for r in results)
    return run


STAGES = {
    # The collection's own unit tests run once, through ansible-test in "units".
    "unit": pytest_stage([os.path.join(ROOT, "tests"), "--ignore", os.path.join(ROOT, "tests", "cluster"),
                          "--ignore", os.path.join(ROOT, "tests", "test_alert_rules.py")]),
    "sanity": command_stage("bash", os.path.join(ROOT, "devtools", "ansible_test.sh"), "sanity"),
    "units": command_stage("bash", os.path.join(ROOT, "devtools", "ansible_test.sh"), "units"),
    "lint": command_stage("bash", os.path.join(ROOT, "devtools", "lint.sh")),
    "molecule": command_stage(os.path.join(BIN, "molecule"), "test", "-s", "render"),
    # Plinth's alert rules through a real promtool: `check rules`, then `test rules` on tests/alert_rules/.
    # After the early stages, so that on an empty cache promtool compiles while they run.
    "rules": pytest_stage([os.path.join(ROOT, "tests", "test_alert_rules.py")]),
    # Real Debian hosts (systemd-nspawn, root): preflight, nodes.yml and the control plane's files.
    "nodes": command_stage(os.path.join(BIN, "molecule"), "test", "-s", "nodes"),
    # A real kube-apiserver on 127.0.0.1: the cluster-facing modules, then the molecule
    # `cluster` scenario (topology.yml, argocd.yml and gitops.yml against it).
    "cluster": stages(pytest_stage([os.path.join(ROOT, "tests", "cluster")]),
                      command_stage(os.path.join(BIN, "molecule"), "test", "-s", "cluster")),
    # Secrets end to end: the vault stage against a real 3-node OpenBao Raft cluster, then a real
    # External Secrets controller (built from its Go module) syncs the rendered stores and secrets.
    "secrets": command_stage(os.path.join(BIN, "molecule"), "test", "-s", "secrets"),
    # A real Argo CD syncs the production example's tree, charts from a loopback mirror,
    # into a real control plane whose pods kwok runs; the convergence stage waits wave by wave.
    "gitops": command_stage(os.path.join(BIN, "molecule"), "test", "-s", "gitops"),
    # The lab end to end (systemd-nspawn, root): site.yml, then Day 2 with an upgrade and a crash during a join.
    "lab": command_stage(os.path.join(BIN, "molecule"), "test", "-s", "lab"),
}
DEFAULT = ("unit", "sanity", "units", "lint", "molecule", "rules", "nodes", "cluster", "secrets", "gitops", "lab")


def lab_from_version():
    """The release the molecule lab scenario builds its cluster on before upgrading it."""
    with open(os.path.join(ROOT, "molecule", "lab", "molecule.yml")) as handle:
        return str(yaml.safe_load(handle)["ansible"]["env"]["PLINTH_LAB_FROM_VERSION"])


# Builds that only later stages need, started with the first stage so that on an empty cache
# they compile while earlier stages run (a cached build returns at once). (command, needed by,
# niceness): a build at niceness 19 takes only the CPU the stages leave idle, so it costs them
# nothing; the stage that needs it waits for the rest.
PREBUILDS = {
    # External Secrets from its Go module (about 7 minutes cold): tests/cluster and the secrets scenario.
    "external-secrets": ([sys.executable, "-m", "airgap.build_external_secrets"], ("cluster", "secrets"), 0),
    # promtool from the Prometheus Go module (about 3 minutes cold): the rules stage.
    "promtool": ([sys.executable, "-m", "airgap.build_promtool"], ("rules",), 0),
    # The Kubernetes binaries of the release the lab starts on and its etcd (about 6 minutes
    # cold), the last stage's: only their own release folders are locked, so no other stage
    # ever waits on them.
    "lab-previous-release": ([sys.executable, "-m", "airgap.build_kubernetes", "--version", lab_from_version(),
                              "--binaries", ",".join(KUBERNETES_BINARIES + (ETCD_BINARY,))], ("lab",), 19),
}


def start_prebuilds(names, log_dir):
    running = {}
    for name, (command, needed_by, niceness) in PREBUILDS.items():
        if set(needed_by) & set(names):
            log = open(os.path.join(log_dir, name + ".log"), "w")
            running[name] = (subprocess.Popen(command, cwd=ROOT, env=env(), stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, preexec_fn=lambda n=niceness: os.nice(n)),
                             log, needed_by)
    return running


def await_prebuilds(running, stage):
    """Wait for the builds ``stage`` needs; a failed one is reported with its log (the stage then retries it)."""
    for name, (process, log, needed_by) in list(running.items()):
        if stage in needed_by:
            code = process.wait()
            log.close()
            del running[name]
            if code:
                with open(log.name) as handle:
                    print("prebuild %s failed (exit %d):\n%s" % (name, code, handle.read()[-4000:]), flush=True)


def main(names):
    names = names or list(DEFAULT)
    for name in names:
        if name not in STAGES:
            sys.exit("unknown stage %r (known: %s)" % (name, ", ".join(STAGES)))
    with tempfile.TemporaryDirectory() as log_dir:
        running = start_prebuilds(names, log_dir)
        try:
            return run_stages(names, running)
        finally:
            for process, log, _needed in running.values():
                process.terminate()
                process.wait()
                log.close()


def run_stages(names, running):
    passed = failed = 0
    lines = []
    for name in names:
        await_prebuilds(running, name)
        print("==> %s" % name, flush=True)
        start = time.time()
        ok, bad = STAGES[name]()
        passed += ok
        failed += bad
        lines.append("%-9s %s  %d passed, %d failed  (%.1fs)" % (
            name, "ok  " if not bad else "FAIL", ok, bad, time.time() - start))
    print("\n".join(["", "summary:"] + ["  " + line for line in lines]))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

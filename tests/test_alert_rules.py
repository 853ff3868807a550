"""Plinth's alerting rules, as the production inventory renders them, pass promtool.

`promtool check rules` reads the PrometheusRule's groups exactly as rendered (PromQL and the
annotation templates); `promtool test rules` then evaluates them against the series in
tests/alert_rules/*.yml, where every alert has a case that fires and one that stays quiet.
The unit tests compare the summary only: the descriptions are prose, whose templates the
check has already parsed, so they are left out of the copy the unit tests load.

promtool comes from airgap/build_promtool.py's cache, built there first when missing.
"""

import copy
import glob
import os
import shutil
import subprocess

import pytest
import yaml

from airgap import build_promtool, cache, launch
from ansible_collections.plinth.platform.plugins.module_utils.components import alerts
from ansible_collections.plinth.platform.plugins.module_utils.spec import build_spec
from ansible_collections.plinth.platform.tests.unit.conftest import load_inventory

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = sorted(glob.glob(os.path.join(HERE, "alert_rules", "*.yml")))
# The thresholds the cases are written for; set here so the production inventory may choose others.
THRESHOLDS = {"certificate_expiry": "7d", "etcd_backup_max_age": "26h"}


class PromtoolMissing(Exception):
    pass


@pytest.fixture(scope="module")
def promtool():
    def find(version, root):
        path = build_promtool.binary_path(root, version)
        return path if os.access(path, os.X_OK) else None
    return launch.ensure_built(find, "airgap.build_promtool", build_promtool.DEFAULT_VERSION, cache.root(),
                               "promtool %s, a cold build takes about 3 minutes" % build_promtool.DEFAULT_VERSION,
                               PromtoolMissing)


@pytest.fixture(scope="module")
def rule():
    variables, groups, hostvars = load_inventory("production")
    variables["plinth_components"].setdefault("monitoring", {}).setdefault("alerts", {}).update(THRESHOLDS)
    spec = build_spec(variables, groups, hostvars)
    found = alerts.prometheus_rule(spec, spec["components"]["monitoring"])
    assert found is not None, "production renders no alerting rules"
    return found


def _write_rules(directory, groups):
    with open(os.path.join(str(directory), "rules.yml"), "w") as handle:
        yaml.safe_dump({"groups": groups}, handle, sort_keys=False)


def _promtool(promtool, *args, cwd=None):
    result = subprocess.run([promtool] + list(args), cwd=cwd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _cases():
    """(file name, alert name, expected alerts) of every alert_rule_test in the case files."""
    found = []
    for path in CASES:
        with open(path) as handle:
            for test in yaml.safe_load(handle)["tests"]:
                for case in test.get("alert_rule_test", []):
                    found.append((os.path.basename(path), case["alertname"], case.get("exp_alerts") or []))
    return found


def test_production_renders_every_alert(rule):
    names = [r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert names == [
        "PlinthArgoCDApplicationUnhealthy", "PlinthArgoCDApplicationOutOfSync",
        "PlinthVaultSealed", "PlinthVaultDown",
        "PlinthExternalSecretNotReady",
        "PlinthCephHealthError", "PlinthCephHealthWarning",
        "PlinthKubeletClientCertificateExpiring", "PlinthKubeletServingCertificateExpiring",
        "PlinthAPIServerClientCertificateExpiring",
        "PlinthEtcdBackupMissing",
    ]


def test_every_alert_has_a_firing_and_a_quiet_case(rule):
    cases = _cases()
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            outcomes = [bool(expected) for _file, name, expected in cases if name == r["alert"]]
            assert True in outcomes, "no case in tests/alert_rules where %s fires" % r["alert"]
            assert False in outcomes, "no case in tests/alert_rules where %s stays quiet" % r["alert"]


def test_cases_name_only_rendered_alerts(rule):
    names = set(r["alert"] for group in rule["spec"]["groups"] for r in group["rules"])
    unknown = sorted(set((f, name) for f, name, _expected in _cases() if name not in names))
    assert not unknown


def test_promtool_checks_the_rules(promtool, rule, tmp_path):
    _write_rules(tmp_path, rule["spec"]["groups"])
    output = _promtool(promtool, "check", "rules", "rules.yml", cwd=str(tmp_path))
    assert "SUCCESS" in output


@pytest.mark.parametrize("case", [os.path.basename(p) for p in CASES])
def test_promtool_unit_tests_pass(promtool, rule, tmp_path, case):
    groups = copy.deepcopy(rule["spec"]["groups"])
    for group in groups:
        for r in group["rules"]:
            del r["annotations"]["description"]
    _write_rules(tmp_path, groups)
    shutil.copy(os.path.join(HERE, "alert_rules", case), str(tmp_path))
    _promtool(promtool, "test", "rules", case, cwd=str(tmp_path))


def test_promtool_builder_names_the_prometheus_release_and_its_cache_folder(tmp_path):
    assert build_promtool.prometheus_version("0.316.0") == "3.16.0"
    assert build_promtool.prometheus_version("v0.305.2") == "3.5.2"
    assert build_promtool.binary_path(str(tmp_path), "0.316.0") == str(tmp_path / "promtool" / "v0.316.0" / "bin"
                                                                       / "promtool")

# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""kubeadm_certs reads kubeadm's expiry report: what is due, what it warns about, what it refuses.

kubeadm here is a script that prints a report in the shape `kubeadm certs check-expiration -o json`
gives (the lab runs the module against the real kubeadm)."""

from __future__ import absolute_import, annotations, division, print_function

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.plinth.platform.plugins.modules import kubeadm_certs

__metaclass__ = type

DAY = 86400


def cert(name, days, ca="ca", missing=False, external=False):
    entry = {"name": name, "residualTime": 0 if missing else int(days * DAY), "externallyManaged": external,
             "missing": missing, "expirationDate": None if missing else "2027-01-%02dT00:00:00Z" % (1 + int(days) % 28)}
    if ca:
        entry["caName"] = ca
    return entry


REPORT = {"kind": "CertificateExpirationInfo", "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
          "certificates": [cert("admin.conf", 20), cert("apiserver", 200), cert("etcd-server", 45, "etcd-ca"),
                           cert("super-admin.conf", 0, missing=True), cert("front-proxy-client", 5, external=True)],
          "certificateAuthorities": [cert("ca", 3000, ca=None), cert("etcd-ca", 10, ca=None)]}


@pytest.fixture
def check(tmp_path, capsys):
    def _check(rc=0, preamble="", **params):
        kubeadm = tmp_path / "kubeadm"
        kubeadm.write_text(u"#!/bin/sh\ncat <<'END'\n%s%s\nEND\nexit %d\n" % (preamble, json.dumps(REPORT), rc))
        kubeadm.chmod(0o755)
        with patch_module_args(dict(params, kubeadm=str(kubeadm))):
            with pytest.raises(SystemExit) as exit_:
                kubeadm_certs.main()
        return exit_.value.code, json.loads(capsys.readouterr().out)
    return _check


def test_names_what_is_due_and_never_changes_anything(check):
    code, result = check(renew_within_days=60)
    assert code == 0 and result["changed"] is False
    assert result["due"] == ["admin.conf", "etcd-server"]
    assert result["certificates"]["etcd-server"]["authority"] == "etcd-ca"
    assert result["certificates"]["super-admin.conf"]["missing"] is True
    assert result["authorities"]["ca"]["seconds_left"] == 3000 * DAY
    assert result["expiring"] == []


def test_more_than_a_year_makes_every_renewable_certificate_due(check):
    code, result = check(renew_within_days=400)
    assert result["due"] == ["admin.conf", "apiserver", "etcd-server"]


def test_warns_under_the_threshold_for_certificates_and_authorities(check):
    code, result = check(warn_within_days=30, preamble="[check-expiration] Reading configuration from the cluster...\n")
    assert code == 0
    assert [w.split(" expires")[0] for w in result["expiring"]] == [
        "certificate admin.conf", "certificate front-proxy-client", "certificate authority etcd-ca"]
    assert "in 20 day(s): under the 30-day threshold" in result["expiring"][0]


def test_a_failing_kubeadm_fails_the_task_with_its_error(check):
    code, result = check(rc=1)
    assert code == 1 and result["failed"] and "check-expiration -o json failed (exit 1)" in result["msg"]


def test_a_negative_threshold_is_refused(check):
    code, result = check(warn_within_days=-1)
    assert code == 1 and result["msg"] == "warn_within_days: got -1; must be 0 or more days"

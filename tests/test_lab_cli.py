"""testbed/lab.py's command line: ansible-playbook's own options reach the playbook run."""

import pytest

from testbed import lab


@pytest.fixture
def runs(monkeypatch):
    calls = []
    monkeypatch.setattr(lab, "site", lambda args, extra, *playbook: calls.append((args.command, extra, playbook)))
    return calls


def test_site_passes_leading_ansible_options_through(runs):
    lab.main(["site", "-e", "plinth_kubernetes_version=1.35.4", "--check"])
    assert runs == [("site", ["-e", "plinth_kubernetes_version=1.35.4", "--check"], ())]


def test_play_passes_its_options_through(runs):
    lab.main(["play", "playbooks/upgrade.yml", "-e", "node_upgrade_batch_size=3", "--diff"])
    assert runs == [("play", ["-e", "node_upgrade_batch_size=3", "--diff"], ("playbooks/upgrade.yml",))]


def test_other_commands_refuse_unknown_options(runs, capsys):
    with pytest.raises(SystemExit):
        lab.main(["status", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert runs == []

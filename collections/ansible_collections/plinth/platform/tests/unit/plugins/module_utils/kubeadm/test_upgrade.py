# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""The upgrade plan: one minor release at a time, never back, resumed where a run stopped."""

from __future__ import absolute_import, annotations, division, print_function

import pytest

from ansible_collections.plinth.platform.plugins.filter.kubeadm import kubeadm_image_tag, kubeadm_upgrade_plan
from ansible_collections.plinth.platform.plugins.module_utils.kubeadm import upgrade

from ansible.errors import AnsibleFilterError

__metaclass__ = type


def running(**versions):
    return [{"what": what.replace("_", "-"), "version": version} for what, version in versions.items()]


def test_one_minor_up_lists_everything_behind():
    result = upgrade.plan("1.36.3", running(cp_1="v1.35.4", worker_1="v1.35.4"))
    assert result == {"target": "1.36.3", "from": "1.35.4", "to_upgrade": ["cp-1", "worker-1"],
                      "path": ["1.35.4", "1.36.3"]}


def test_a_run_that_stopped_half_way_plans_the_rest():
    result = upgrade.plan("v1.36.3", running(cp_1="v1.36.3", cp_2="v1.35.4", worker_1="v1.35.4"))
    assert result["to_upgrade"] == ["cp-2", "worker-1"]
    assert result["path"] == ["1.35.4", "1.36.3"]


def test_patch_releases_upgrade_within_the_minor():
    assert upgrade.plan("1.36.3", running(cp_1="1.36.1"))["to_upgrade"] == ["cp-1"]


def test_nothing_to_do_when_everything_runs_the_target():
    assert upgrade.plan("1.36.3", running(cp_1="v1.36.3", worker_1="v1.36.3")) == {
        "target": "1.36.3", "from": "1.36.3", "to_upgrade": [], "path": []}


def test_a_skipped_minor_is_refused_with_the_release_to_set_first():
    with pytest.raises(ValueError) as caught:
        upgrade.plan("1.36.3", running(cp_1="v1.35.4", worker_1="v1.34.7"))
    message = str(caught.value)
    assert "plinth_kubernetes_version is 1.36.3" in message
    assert "worker-1 runs 1.34.7" in message
    assert "skips 1.35" in message and "one minor release at a time" in message
    assert "to a 1.35 release" in message


def test_a_downgrade_is_refused_naming_the_newest_component():
    with pytest.raises(ValueError) as caught:
        upgrade.plan("1.35.4", running(cp_1="v1.36.3", cp_2="v1.36.1", worker_1="v1.35.4"))
    assert "plinth_kubernetes_version is 1.35.4, but cp-1 runs 1.36.3: downgrades are not supported" in str(
        caught.value)


def test_a_patch_downgrade_is_refused_too():
    with pytest.raises(ValueError, match="downgrades are not supported"):
        upgrade.plan("1.36.1", running(cp_1="v1.36.3"))


def test_a_new_major_release_is_refused():
    with pytest.raises(ValueError, match="within one major release"):
        upgrade.plan("2.0.0", running(cp_1="v1.36.3"))


@pytest.mark.parametrize("target", ["1.36", "latest", "", None, "v1.36.3-rc.1"])
def test_a_target_that_is_not_a_release_names_the_variable(target):
    with pytest.raises(ValueError, match="^plinth_kubernetes_version: .* is not a Kubernetes release"):
        upgrade.plan(target, running(cp_1="v1.36.3"))


def test_an_unreadable_running_version_names_its_component():
    with pytest.raises(ValueError, match="^kubelet on worker-1 runs 'v1.36' is not"):
        upgrade.plan("1.36.3", [{"what": "kubelet on worker-1", "version": "v1.36"}])


def test_no_component_found_is_refused():
    with pytest.raises(ValueError, match="is the cluster up"):
        upgrade.plan("1.36.3", [])


def node(name, version):
    return {"metadata": {"name": name}, "status": {"nodeInfo": {"kubeletVersion": version}}}


def apiserver(host, image):
    return {"metadata": {"name": "kube-apiserver-" + host},
            "spec": {"nodeName": host, "containers": [{"name": "kube-apiserver", "image": image}]}}


def test_the_filter_reads_kubelets_and_api_server_images():
    result = kubeadm_upgrade_plan(
        [node("cp-1", "v1.35.4"), node("worker-1", "v1.35.4")], "1.36.3",
        apiserver_pods=[apiserver("cp-1", "registry.k8s.io/kube-apiserver:v1.36.3"),
                        apiserver("cp-2", "mirror.example:5000/kube-apiserver:v1.35.4@sha256:" + "0" * 64)])
    assert result["to_upgrade"] == ["kube-apiserver on cp-2", "kubelet on cp-1", "kubelet on worker-1"]
    assert result["path"] == ["1.35.4", "1.36.3"]


def test_the_filter_names_the_variable_it_is_given():
    with pytest.raises(AnsibleFilterError, match="cannot plan the upgrade: upgrade_to is 1.34.0"):
        kubeadm_upgrade_plan([node("cp-1", "v1.35.4")], "1.34.0", variable="upgrade_to")
    with pytest.raises(AnsibleFilterError, match="cannot plan the upgrade: kube-apiserver on cp-1 runs '' is not"):
        kubeadm_upgrade_plan([], "1.36.3", apiserver_pods=[apiserver("cp-1", "kube-apiserver")])
    with pytest.raises(AnsibleFilterError, match="cannot plan the upgrade"):
        kubeadm_upgrade_plan([{"metadata": {"name": "cp-1"}}], "1.36.3")


@pytest.mark.parametrize("image, tag", [
    ("registry.k8s.io/kube-apiserver:v1.36.3", "v1.36.3"),
    ("mirror.example:5000/kube-apiserver:v1.35.4@sha256:" + "0" * 64, "v1.35.4"),
    ("mirror.example:5000/kube-apiserver", ""),
    ("kube-apiserver@sha256:" + "0" * 64, ""),
])
def test_the_image_tag_filter_tells_a_tag_from_a_port_and_a_digest(image, tag):
    assert kubeadm_image_tag(image) == tag

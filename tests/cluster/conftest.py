"""One real control plane (etcd, kube-apiserver, kube-controller-manager) for the session.

The binaries come from scripts/build_kubernetes.py's cache; a cold cache builds them
first (about ten minutes), after that the cluster is ready in seconds.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import testcluster  # noqa: E402


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    test_cluster = testcluster.TestCluster(str(tmp_path_factory.mktemp("cluster")))
    test_cluster.start()
    yield test_cluster
    test_cluster.stop()


@pytest.fixture(scope="session")
def pods_cluster(tmp_path_factory):
    """A second control plane that also runs pods: kube-scheduler places them, kwok runs them."""
    test_cluster = testcluster.TestCluster(str(tmp_path_factory.mktemp("pods-cluster")), pods=True)
    test_cluster.start()
    yield test_cluster
    test_cluster.stop()

"""One real control plane (etcd, kube-apiserver, kube-controller-manager) for the session.

The binaries come from airgap/build_kubernetes.py's cache; a cold cache builds them
first (about ten minutes), after that the cluster is ready in seconds.
"""

import pytest

from testbed import testcluster


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

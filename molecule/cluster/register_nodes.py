"""Register a Node object for each host of the scenario's cluster, as its kubelet would.

    python register_nodes.py --dir CLUSTER_DIR --control-plane cp-1,cp-2 --nodes gw-1,worker-1

Control-plane nodes also get kubeadm's label and taint. Nodes that exist are left alone;
prints "registered N" (0 when every node was there).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))

import testcluster  # noqa: E402


def names(text):
    return [name for name in (text or "").split(",") if name]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the test cluster's directory")
    parser.add_argument("--control-plane", default="", help="comma-separated control-plane hosts")
    parser.add_argument("--nodes", default="", help="comma-separated other hosts")
    args = parser.parse_args(argv)

    cluster = testcluster.TestCluster(args.dir)
    existing = set(node["metadata"]["name"] for node in cluster.api.request("GET", "/api/v1/nodes")["items"])
    wanted = [{"name": name, "control_plane": True} for name in names(args.control_plane)]
    wanted += [{"name": name} for name in names(args.nodes)]
    missing = [node for node in wanted if node["name"] not in existing]
    cluster.register_nodes(missing)
    print("registered %d" % len(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())

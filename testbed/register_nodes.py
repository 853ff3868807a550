"""Register a Node object for each host of the scenario's cluster, as its kubelet would.

    python -m testbed.register_nodes --dir CLUSTER_DIR --control-plane cp-1,cp-2 --nodes gw-1,worker-1 \
        [--addresses cp-1=192.0.2.11,...] [--serving-certs]

Control-plane nodes also get kubeadm's label and taint. Nodes that exist are left alone;
prints "registered N" (0 when every node was there).

With --serving-certs, each node that has no kubelet-serving certificate request yet asks for
one as its kubelet does with serverTLSBootstrap: authenticated as system:node:<name> (a
client certificate from the cluster's CA), for its own name and, when given, its address.
Prints "requested N" too.
"""

import argparse
import base64
import ipaddress
import sys

from testbed import pki, testcluster

CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
SIGNER = "kubernetes.io/kubelet-serving"


def names(text):
    return [name for name in (text or "").split(",") if name]


def serving_request(name, address=None):
    """A PEM certificate request for node ``name``'s serving certificate, as the kubelet makes it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    alt = [x509.DNSName(name)]
    if address:
        alt.append(x509.IPAddress(ipaddress.ip_address(address)))
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, "system:node:" + name)]))
           .add_extension(x509.SubjectAlternativeName(alt), critical=False)
           .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def request_serving_cert(cluster, name, address=None):
    """Ask for ``name``'s serving certificate with the node's own credentials."""
    client = "node-" + name
    pki.write_client_cert(cluster.pki, client, "system:node:" + name, ["system:nodes"])
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"signerName": SIGNER, "request": base64.b64encode(serving_request(name, address)).decode(),
                     "usages": ["digital signature", "server auth"]}}
    return cluster.client(client).request("POST", CSR_PATH, body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="the test cluster's directory")
    parser.add_argument("--control-plane", default="", help="comma-separated control-plane hosts")
    parser.add_argument("--nodes", default="", help="comma-separated other hosts")
    parser.add_argument("--addresses", default="", help="comma-separated host=address pairs (IP addresses)")
    parser.add_argument("--serving-certs", action="store_true",
                        help="ask for each node's kubelet serving certificate, as kubelets with serverTLSBootstrap do")
    args = parser.parse_args(argv)

    cluster = testcluster.TestCluster(args.dir)
    existing = set(node["metadata"]["name"] for node in cluster.api.request("GET", "/api/v1/nodes")["items"])
    wanted = [{"name": name, "control_plane": True} for name in names(args.control_plane)]
    wanted += [{"name": name} for name in names(args.nodes)]
    missing = [node for node in wanted if node["name"] not in existing]
    cluster.register_nodes(missing)
    print("registered %d" % len(missing))
    if args.serving_certs:
        addresses = dict(pair.split("=", 1) for pair in names(args.addresses))
        asked = set()
        for csr in cluster.api.request("GET", CSR_PATH)["items"]:
            if csr["spec"].get("signerName") == SIGNER:
                asked.add(csr["spec"]["username"][len("system:node:"):])
        todo = [node["name"] for node in wanted if node["name"] not in asked]
        for name in todo:
            request_serving_cert(cluster, name, addresses.get(name))
        print("requested %d" % len(todo))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The test control plane's certificates: a CA, the API server's serving certificate, the
service-account key pair and client certificates (users, nodes, components), and the
kubeconfigs that carry them. Needs the `cryptography` package (a dependency of ansible-core).
"""

import base64
import datetime
import ipaddress
import os


def _crypto():
    # Imported late so `down` and `status` work without the package.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    return x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID


def write_file(path, data, mode=0o600):
    """``data`` into ``path``, created with ``mode`` (private keys never readable by others)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
        handle.write(data)


def _key_pem(key):
    _, _, serialization, _, _, _ = _crypto()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert):
    _, _, serialization, _, _, _ = _crypto()
    return cert.public_bytes(serialization.Encoding.PEM)


def _certificate(subject_cn, issuer, issuer_key, key, organisations=(), ca=False, server=None):
    x509, hashes, _, _, eku, name_oid = _crypto()
    attributes = [x509.NameAttribute(name_oid.ORGANIZATION_NAME, o) for o in organisations]
    subject = x509.Name(attributes + [x509.NameAttribute(name_oid.COMMON_NAME, subject_cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = eku.SERVER_AUTH if server else eku.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(server), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _new_key():
    _, _, _, ec, _, _ = _crypto()
    # P-256: a fraction of RSA's key generation time, and every component accepts it.
    return ec.generate_private_key(ec.SECP256R1())


def write_pki(pki, service_ip):
    """CA, apiserver serving cert, service-account key pair and client certs, in ``pki``."""
    x509, _, serialization, _, _, _ = _crypto()
    os.makedirs(pki, mode=0o700, exist_ok=True)
    ca_key = _new_key()
    ca = _certificate("plinth-test-ca", None, None, ca_key, ca=True)
    write_file(os.path.join(pki, "ca.key"), _key_pem(ca_key))
    write_file(os.path.join(pki, "ca.crt"), _cert_pem(ca), 0o644)

    serving_key = _new_key()
    names = [x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default",
                                       "kubernetes.default.svc", "kubernetes.default.svc.cluster.local")]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", service_ip)]
    serving = _certificate("kube-apiserver", ca, ca_key, serving_key, server=names)
    write_file(os.path.join(pki, "apiserver.key"), _key_pem(serving_key))
    write_file(os.path.join(pki, "apiserver.crt"), _cert_pem(serving), 0o644)

    sa_key = _new_key()
    write_file(os.path.join(pki, "sa.key"), _key_pem(sa_key))
    write_file(os.path.join(pki, "sa.pub"), sa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)

    clients = {
        "admin": ("kubernetes-admin", ("system:masters",)),
        "controller-manager": ("system:kube-controller-manager", ()),
    }
    for name, (common_name, groups) in clients.items():
        write_client_cert(pki, name, common_name, groups, ca=ca, ca_key=ca_key)


def write_client_cert(pki, name, common_name, groups=(), ca=None, ca_key=None):
    """``pki/<name>.crt`` and ``.key``: a client certificate for user ``common_name``."""
    x509, _, serialization, _, _, _ = _crypto()
    if ca is None:
        with open(os.path.join(pki, "ca.crt"), "rb") as handle:
            ca = x509.load_pem_x509_certificate(handle.read())
        with open(os.path.join(pki, "ca.key"), "rb") as handle:
            ca_key = serialization.load_pem_private_key(handle.read(), None)
    key = _new_key()
    cert = _certificate(common_name, ca, ca_key, key, organisations=groups)
    write_file(os.path.join(pki, name + ".key"), _key_pem(key))
    write_file(os.path.join(pki, name + ".crt"), _cert_pem(cert), 0o644)


def kubeconfig(server, pki, client, cluster_name="plinth-test"):
    """A kubeconfig document (JSON is YAML) with the client's certificate embedded."""
    def b64(name):
        with open(os.path.join(pki, name), "rb") as handle:
            return base64.b64encode(handle.read()).decode("ascii")
    user = "%s@%s" % (client, cluster_name)
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {
            "server": server, "certificate-authority-data": b64("ca.crt")}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(client + ".crt"), "client-key-data": b64(client + ".key")}}],
        "contexts": [{"name": user, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": user,
    }

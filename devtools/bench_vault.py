#!/usr/bin/env python3
"""Time the vault stage's two actions against a real 3-node OpenBao Raft cluster.

    python -m devtools.bench_vault [--sizes 5,50,200] [--dir DIR]

For each size (namespaces that read secrets, one seeded path each) it starts a fresh
cluster (testbed/openbao.py), then times whole `ansible-playbook` runs of the
vault_unseal and vault_configure actions: the first (initialise, unseal three servers,
configure, seed), a no-op re-run (which still generates and revokes a root token for the
run), a re-run after one server restarted sealed, and a re-run after one secret changed.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testbed import openbao

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    __bench: "{{ lookup('ansible.builtin.file', bench_file) | from_json }}"
    bench_secrets: "{{ __bench.secrets }}"
  tasks:
    - plinth.platform.vault_unseal:
        keys_file: "{{ __bench.keys_file }}"
        init: {key_shares: 5, key_threshold: 3}
        addresses: "{{ __bench.addresses }}"
    - plinth.platform.vault_configure:
        keys_file: "{{ __bench.keys_file }}"
        access: "{{ __bench.access }}"
        secrets_var: bench_secrets
        kubernetes: {host: "https://127.0.0.1:6443", ca_cert: "{{ __bench.ca_cert }}"}
        addresses: "{{ __bench.addresses }}"
"""


def ca_certificate():
    """A throwaway CA certificate: Vault's Kubernetes auth wants one, nothing here calls that API server."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def write_inputs(workdir, size, addresses, secret_suffix="v1"):
    consumers = [{"namespace": "ns-%03d" % i, "role": "plinth-ns-%03d" % i, "policy": "plinth-ns-%03d" % i,
                  "paths": ["apps/ns-%03d/db" % i]} for i in range(size)]
    data = {
        "keys_file": os.path.join(workdir, "keys.yml"),
        "addresses": addresses,
        "ca_cert": ca_certificate(),
        "access": {"kv_mount": "secret", "auth_mount": "kubernetes", "service_account": "vault-secrets-reader",
                   "prefix": "plinth-", "consumers": consumers},
        "secrets": dict(("apps/ns-%03d/db" % i, {"password": "bench-%03d-%s" % (i, secret_suffix if i == 0 else "v1")})
                        for i in range(size)),
    }
    path = os.path.join(workdir, "bench.json")
    with open(path, "w") as handle:
        json.dump(data, handle)
    return path


def run(workdir, bench_file):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "collections")]))
    command = [os.path.join(BIN, "ansible-playbook"), os.path.join(workdir, "bench.yml"),
               "--vault-password-file", os.path.join(workdir, "vault-password"), "-e", "bench_file=" + bench_file]
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=workdir)
    seconds = time.monotonic() - started
    if result.returncode:
        raise RuntimeError("vault stage failed:\n%s%s" % (result.stdout[-3000:], result.stderr[-2000:]))
    changed = int(result.stdout.rsplit("changed=", 1)[1].split()[0])
    return seconds, changed


def bench_size(workdir, size):
    os.makedirs(workdir)
    with open(os.path.join(workdir, "bench.yml"), "w") as handle:
        handle.write(PLAYBOOK)
    with open(os.path.join(workdir, "vault-password"), "w") as handle:
        handle.write("bench-only\n")
    cluster = openbao.OpenBaoCluster(os.path.join(workdir, "bao"), unauthed_generate_root=True)
    cluster.start()
    try:
        inputs = write_inputs(workdir, size, cluster.addresses)
        first = run(workdir, inputs)
        noop = run(workdir, inputs)
        cluster.stop_node(2)
        cluster.start_node(2)
        healed = run(workdir, inputs)
        rotated = run(workdir, write_inputs(workdir, size, cluster.addresses, secret_suffix="v2"))
    finally:
        cluster.stop()
    for label, (_seconds, changed), want in (("first", first, 2), ("no-op", noop, 0), ("heal", healed, 1),
                                             ("rotation", rotated, 1)):
        if changed != want:
            raise RuntimeError("%s run with %d namespaces reported changed=%d, expected %d"
                               % (label, size, changed, want))
    return first[0], noop[0], healed[0], rotated[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="5,50,200", type=lambda t: [int(s) for s in t.split(",")])
    parser.add_argument("--dir", help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    workdir = args.dir or tempfile.mkdtemp(prefix="plinth-bench-vault-")
    print("%10s  %10s  %10s  %12s  %10s  %14s" % ("namespaces", "first run", "no-op run", "after restart",
                                                  "rotation", "no-op / namespace"))
    for size in args.sizes:
        first, noop, healed, rotated = bench_size(os.path.join(workdir, "size-%d" % size), size)
        print("%10d  %8.2f s  %8.2f s  %10.2f s  %8.2f s  %14.1f ms"
              % (size, first, noop, healed, rotated, 1000 * noop / size), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The loopback forwarder into a network namespace, against a real namespace: an echo server
runs on the namespace's own 127.0.0.1, reachable from this machine only through the forwarder.
Needs root (ip netns, nsenter) and systemd-socket-activate, nsenter and socat on PATH."""

import concurrent.futures
import contextlib
import hashlib
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from testbed import forward

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EOF_MARK = b"<client-eof>"
# Echoes every byte; once the client has shut down writing, sends EOF_MARK and closes. So a
# reply ending in EOF_MARK proves the half-close crossed the forwarder. Listens on the port
# its argument names (0: any), prints it.
ECHO_SERVER = r"""
import socket, sys, threading

def serve(conn):
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
            conn.sendall(%r)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass

server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen(128)
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
""" % EOF_MARK


def cli(*args):
    return subprocess.run([sys.executable, "-m", "testbed.forward"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def forwarder_pids(pidfile):
    """Every process on the machine that is a forwarder for this pid file."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and forward.forwarder_of(int(entry), os.path.abspath(pidfile)):
            pids.append(int(entry))
    return pids


def add_netns(name):
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)


def delete_netns(name):
    if os.path.exists(os.path.join("/run/netns", name)):
        subprocess.run(["ip", "netns", "delete", name], check=False)


def end_process(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def echo_server(netns, port=0):
    """An echo server on 127.0.0.1 inside netns; yields its port."""
    proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-c", ECHO_SERVER, str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        assert line.strip().isdigit(), "echo server did not start in %s (exit %s)" % (netns, proc.poll())
        yield int(line)
    finally:
        end_process(proc)
        proc.stdout.close()


def exchange(port, payload, shut=True):
    """Send payload (from a thread, so a large one cannot deadlock against the echo), shut
    down writing, and read until the other side closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        def send():
            sock.sendall(payload)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        received = []
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            received.append(data)
        sender.join(30)
        return b"".join(received)


def connections(pid):
    """The connections forwarder pid carries now: systemd-socket-activate starts one child each."""
    with open("/proc/%d/task/%d/children" % (pid, pid), encoding="ascii") as handle:
        return [int(child) for child in handle.read().split()]


def wait_until(condition, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out after %ss waiting until %s" % (timeout, what)
        time.sleep(0.02)


@pytest.fixture(scope="module")
def netns():
    if os.geteuid() != 0:
        pytest.fail("tests/test_forward.py must run as root: it creates network namespaces "
                    "and the forwarder enters them", pytrace=False)
    missing = [tool for tool in ("systemd-socket-activate", "nsenter", "socat") if not shutil.which(tool)]
    if missing:
        pytest.fail("the forwarder needs %s (devtools/install_test_hosts.sh installs them)" % ", ".join(missing),
                    pytrace=False)
    name = "plinth-fwdtest-%s" % secrets.token_hex(4)
    try:
        add_netns(name)
        yield name
    finally:
        delete_netns(name)


@pytest.fixture(scope="module")
def echo_port(netns):
    """The port of an echo server on 127.0.0.1 inside the namespace."""
    with echo_server(netns) as port:
        yield port


@pytest.fixture
def forwarder(netns, echo_port, tmp_path):
    """A forwarder started through the command line, stopped (and checked gone) afterwards."""
    pidfile = str(tmp_path / "run" / "forward.pid")
    listen_port = free_port()
    args = ["--netns", netns, "--listen", "127.0.0.1:%d" % listen_port, "--to", "127.0.0.1:%d" % echo_port,
            "--pidfile", pidfile, "--log", str(tmp_path / "forward.log")]
    try:
        result = cli("start", *args)
        assert result.returncode == 0, result.stderr
        yield {"port": listen_port, "pidfile": pidfile, "args": args, "pid": forward.read_pid(pidfile),
               "stdout": result.stdout, "netns": netns, "to": "127.0.0.1:%d" % echo_port}
    finally:
        forward.stop(pidfile)
        assert forwarder_pids(pidfile) == []


def test_bytes_cross_into_the_namespace_and_only_through_the_forwarder(forwarder, echo_port):
    assert forwarder["stdout"].startswith("started: 127.0.0.1:%d -> 127.0.0.1:%d in netns %s"
                                          % (forwarder["port"], echo_port, forwarder["netns"]))
    assert exchange(forwarder["port"], b"hello") == b"hello" + EOF_MARK
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", echo_port), timeout=5).close()


def netns_inode(path):
    return os.stat(path).st_ino


def test_listener_is_on_this_machine_and_connections_start_inside_the_namespace(forwarder):
    pid = forwarder["pid"]
    assert forwarder_pids(forwarder["pidfile"]) == [pid]
    assert netns_inode("/proc/%d/ns/net" % pid) == netns_inode("/proc/self/ns/net")
    with socket.create_connection(("127.0.0.1", forwarder["port"]), timeout=30) as sock:
        sock.sendall(b"ping")
        assert sock.recv(100) == b"ping"
        [child] = connections(pid)
        assert netns_inode("/proc/%d/ns/net" % child) == netns_inode("/run/netns/" + forwarder["netns"])


def test_concurrent_connections_each_get_their_own_bytes(forwarder):
    payloads = [("%02d:" % i).encode() + os.urandom(200_000) for i in range(20)]
    barrier = threading.Barrier(20, timeout=30)

    def one(payload):
        with socket.create_connection(("127.0.0.1", forwarder["port"]), timeout=30) as sock:
            barrier.wait()  # all 20 open at once
            sender = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
            sender.start()
            received = b""
            while True:
                data = sock.recv(1 << 16)
                if not data:
                    break
                received += data
            sender.join(30)
            return received

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(one, payloads))
    assert [reply == payload + EOF_MARK for reply, payload in zip(replies, payloads)] == [True] * 20


def test_large_payload_arrives_intact(forwarder):
    payload = os.urandom(5 * 1024 * 1024)
    reply = exchange(forwarder["port"], payload)
    assert len(reply) == len(payload) + len(EOF_MARK)
    assert hashlib.sha256(reply).hexdigest() == hashlib.sha256(payload + EOF_MARK).hexdigest()


def test_half_close_keeps_the_other_direction_open(forwarder):
    with socket.create_connection(("127.0.0.1", forwarder["port"]), timeout=30) as sock:
        sock.sendall(b"first")
        assert sock.recv(100) == b"first"
        sock.sendall(b"second")
        sock.shutdown(socket.SHUT_WR)
        time.sleep(1)  # longer than socat's default wait after a half-close (0.5 s)
        rest = b""
        while True:
            data = sock.recv(100)
            if not data:
                break
            rest += data
    assert rest == b"second" + EOF_MARK


def test_one_broken_connection_does_not_stop_the_forwarder(forwarder):
    pid = forwarder["pid"]
    sock = socket.create_connection(("127.0.0.1", forwarder["port"]), timeout=30)
    wait_until(lambda: connections(pid), "the forwarder has taken the connection")
    sock.sendall(os.urandom(1 << 20))
    # Close with a reset while bytes are still in flight both ways.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    wait_until(lambda: not connections(pid), "the forwarder has ended the broken connection")
    assert exchange(forwarder["port"], b"still here") == b"still here" + EOF_MARK
    wait_until(lambda: not connections(pid), "the forwarder has ended the finished exchange")
    assert forward.status(forwarder["pidfile"])["pid"] == pid, "the forwarder is gone"


def test_unreachable_target_closes_the_client_only(netns, tmp_path):
    pidfile = str(tmp_path / "refused.pid")
    port = free_port()
    try:
        forward.start(netns, "127.0.0.1:%d" % port, "127.0.0.1:%d" % free_port(), pidfile)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                with contextlib.suppress(ConnectionResetError):
                    assert sock.recv(100) == b""
        assert forward.status(pidfile) is not None
    finally:
        forward.stop(pidfile)


def test_start_twice_is_a_no_op(forwarder):
    again = cli("start", *forwarder["args"])
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("running already: ")
    assert forward.read_pid(forwarder["pidfile"]) == forwarder["pid"]
    result = forward.start(forwarder["netns"], "127.0.0.1:%d" % forwarder["port"], forwarder["to"],
                           forwarder["pidfile"])
    assert (result["started"], result["pid"]) == (False, forwarder["pid"])
    assert forwarder_pids(forwarder["pidfile"]) == [forwarder["pid"]]


def test_start_with_other_arguments_fails_naming_both(forwarder):
    other = "127.0.0.1:%d" % free_port()
    args = list(forwarder["args"])
    args[args.index("--to") + 1] = other
    result = cli("start", *args)
    assert result.returncode != 0
    assert forwarder["to"] in result.stderr and other in result.stderr
    assert "other arguments" in result.stderr
    assert forwarder_pids(forwarder["pidfile"]) == [forwarder["pid"]]


@pytest.mark.parametrize("listen", ["0.0.0.0:%d", "10.123.66.1:%d", "[::1]:%d", "localhost:%d"])
def test_listen_address_outside_loopback_is_refused(netns, echo_port, tmp_path, listen):
    pidfile = str(tmp_path / "forward.pid")
    result = cli("start", "--netns", netns, "--listen", listen % free_port(), "--to", "127.0.0.1:%d" % echo_port,
                 "--pidfile", pidfile)
    assert result.returncode != 0
    assert "must be an IPv4 address in 127.0.0.0/8" in result.stderr
    assert not os.path.exists(pidfile) and forwarder_pids(pidfile) == []


def test_missing_namespace_is_named(tmp_path, netns):
    pidfile = str(tmp_path / "forward.pid")
    missing = netns + "-missing"
    result = cli("start", "--netns", missing, "--listen", "127.0.0.1:%d" % free_port(), "--to", "127.0.0.1:1",
                 "--pidfile", pidfile)
    assert result.returncode != 0
    assert "network namespace %r does not exist" % missing in result.stderr
    assert not os.path.exists(pidfile) and forwarder_pids(pidfile) == []


def test_port_in_use_is_named(netns, echo_port, tmp_path):
    pidfile = str(tmp_path / "forward.pid")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        listen = "127.0.0.1:%d" % taken.getsockname()[1]
        result = cli("start", "--netns", netns, "--listen", listen, "--to", "127.0.0.1:%d" % echo_port,
                     "--pidfile", pidfile)
    assert result.returncode != 0
    assert "%s is in use already" % listen in result.stderr
    assert not os.path.exists(pidfile) and forwarder_pids(pidfile) == []


def test_status_describes_the_forwarder(forwarder):
    result = cli("status", "--pidfile", forwarder["pidfile"])
    assert result.returncode == 0
    assert "127.0.0.1:%d -> %s in netns %s (pid %d" % (
        forwarder["port"], forwarder["to"], forwarder["netns"], forwarder["pid"]) in result.stdout


def test_stop_ends_the_process_and_its_connections_and_is_safe_to_repeat(forwarder):
    pid, pidfile = forwarder["pid"], forwarder["pidfile"]
    carried = socket.create_connection(("127.0.0.1", forwarder["port"]), timeout=30)
    with carried:
        carried.sendall(b"ping")
        assert carried.recv(100) == b"ping"
        result = cli("stop", "--pidfile", pidfile)
        assert (result.returncode, result.stdout.strip()) == (0, "stopped pid %d" % pid)
        with contextlib.suppress(ConnectionResetError):
            assert carried.recv(100) == b""
    assert forward.forwarder_of(pid, pidfile) is None and forwarder_pids(pidfile) == []
    assert not os.path.exists(pidfile)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", forwarder["port"]), timeout=5).close()
    again = cli("stop", "--pidfile", pidfile)
    assert (again.returncode, again.stdout.startswith("not running")) == (0, True)
    assert cli("status", "--pidfile", pidfile).returncode == 1


def test_stale_pid_file_is_replaced_and_its_pid_never_killed(netns, echo_port, tmp_path):
    pidfile = str(tmp_path / "forward.pid")
    bystander = subprocess.Popen(["sleep", "120"])
    try:
        with open(pidfile, "w") as handle:
            handle.write("%d\n" % bystander.pid)
        assert cli("status", "--pidfile", pidfile).returncode == 1
        assert cli("stop", "--pidfile", pidfile).returncode == 0
        assert bystander.poll() is None and not os.path.exists(pidfile)
        with open(pidfile, "w") as handle:
            handle.write("%d\n" % bystander.pid)
        result = forward.start(netns, "127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % echo_port, pidfile)
        assert result["started"] and result["pid"] != bystander.pid
        assert forward.read_pid(pidfile) == result["pid"]
        assert bystander.poll() is None
    finally:
        forward.stop(pidfile)
        end_process(bystander)
    assert forwarder_pids(pidfile) == []


def test_a_replaced_namespace_is_reached_without_a_restart(tmp_path):
    name = "plinth-fwdtest-%s" % secrets.token_hex(4)
    pidfile = str(tmp_path / "forward.pid")
    listen, port = "127.0.0.1:%d" % free_port(), free_port()
    try:
        add_netns(name)
        first = forward.start(name, listen, "127.0.0.1:%d" % port, pidfile)
        with echo_server(name, port):
            assert exchange(int(listen.rsplit(":", 1)[1]), b"old") == b"old" + EOF_MARK
        delete_netns(name)
        add_netns(name)
        again = forward.start(name, listen, "127.0.0.1:%d" % port, pidfile)
        assert (again["started"], again["pid"]) == (False, first["pid"])
        with echo_server(name, port):
            assert exchange(int(listen.rsplit(":", 1)[1]), b"new") == b"new" + EOF_MARK
    finally:
        forward.stop(pidfile)
        delete_netns(name)
    assert forwarder_pids(pidfile) == []

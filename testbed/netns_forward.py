#!/usr/bin/env python3
"""A TCP port on this machine's loopback that leads into a network namespace.

    netns_forward.py start --netns NAME --listen 127.0.0.1:PORT --to HOST:PORT --pidfile PATH [--log PATH]
    netns_forward.py status --pidfile PATH
    netns_forward.py stop --pidfile PATH
    netns_forward.py run --netns NAME --listen 127.0.0.1:PORT --to HOST:PORT --pidfile PATH [--log PATH]

The lab's addresses (the Kubernetes API's virtual IP among them) exist only inside the
network namespaces testbed/testhosts.py creates, while kubectl, helm and Ansible run in the
machine's own network. The forwarder binds its listening socket in the machine's network
first and then moves itself into the namespace NAME (/run/netns/NAME), so the listener stays
on the machine's loopback while every connection it opens to HOST:PORT starts inside the
namespace. Bytes flow both ways, for many connections at once, half-closes included.

`start` runs the forwarder in the background and returns once it listens. It does nothing
when the pid file names a forwarder with the same namespace and addresses (the log path is
not compared), replaces a stale pid file and a forwarder whose namespace has been deleted and
created again since, and fails when the pid file names a forwarder with other arguments.
`stop` ends the forwarder and removes the pid file; it is safe to repeat. `status` exits 0
and describes the forwarder when it runs, 1 when not. `run` is the forwarder itself, in the
foreground.

The listen address must be in 127.0.0.0/8: any other address would open the namespace to
other machines. Needs root (setns). Other scripts may import start(netns, listen, to,
pidfile, log=None), stop(pidfile) and status(pidfile); they raise ForwardError.
"""

import argparse
import contextlib
import ctypes
import errno
import fcntl
import ipaddress
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import traceback

SCRIPT = os.path.abspath(__file__)
NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
READY_TIMEOUT = 10
STOP_TIMEOUT = 10
CONNECT_TIMEOUT = 10
CHUNK = 1 << 16
ACCEPT_BATCH = 64


class ForwardError(Exception):
    """A forwarder cannot be started, stopped or run; the message says why."""


# Addresses and arguments

def parse_address(text, option):
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ForwardError("%s %r: expected HOST:PORT with a port from 1 to 65535" % (option, text))
    return host, int(port)


def parse_listen(text):
    host, port = parse_address(text, "--listen")
    try:
        loopback = ipaddress.IPv4Address(host) in LOOPBACK
    except ValueError:
        loopback = False
    if not loopback:
        raise ForwardError("--listen %r: the address must be an IPv4 address in %s, so that "
                           "only this machine reaches the namespace" % (text, LOOPBACK))
    return host, port


def format_address(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def netns_path(name):
    if not name or "/" in name or name in (".", ".."):
        raise ForwardError("--netns %r is not a network namespace name" % name)
    return os.path.join(NETNS_DIR, name)


def check_netns(name):
    path = netns_path(name)
    if not os.path.exists(path):
        raise ForwardError("network namespace %r does not exist (no %s)" % (name, path))
    return path


def wanted(netns, listen, to):
    """The arguments that make a forwarder what it is, in the form its command line carries."""
    netns_path(netns)
    return {"netns": netns, "listen": format_address(*parse_listen(listen)),
            "to": format_address(*parse_address(to, "--to"))}


def describe(forwarder):
    return "%s -> %s in netns %s" % (forwarder["listen"], forwarder["to"], forwarder["netns"])


def run_command(forwarder, pidfile, log, ready_fd):
    command = [sys.executable, SCRIPT, "run", "--netns", forwarder["netns"],
               "--listen", forwarder["listen"], "--to", forwarder["to"], "--pidfile", pidfile,
               "--ready-fd", str(ready_fd)]
    return command + (["--log", log] if log else [])


# Processes

def read_pid(pidfile):
    try:
        with open(pidfile, encoding="utf-8") as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def forwarder_of(pid, pidfile):
    """The arguments of pid when it is a forwarder `run` for this pid file, else None.

    Pids get reused, so only the command line tells whether pid still is the forwarder;
    a zombie has an empty one and counts as gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = [os.fsdecode(arg) for arg in handle.read().split(b"\0")[:-1]]
    except OSError:
        return None
    if len(argv) < 3 or os.path.basename(argv[1]) != os.path.basename(SCRIPT) or argv[2] != "run":
        return None
    options = argv[3:]
    if len(options) % 2:
        return None
    options = dict(zip(options[::2], options[1::2]))
    if options.get("--pidfile") != pidfile:
        return None
    forwarder = {key: options.get("--" + key) for key in ("netns", "listen", "to", "log")}
    return forwarder if None not in (forwarder["netns"], forwarder["listen"], forwarder["to"]) else None


def in_netns(pid, netns):
    """Whether pid's network namespace is the one /run/netns/NAME names now (it may have
    been deleted and created again since the forwarder entered it)."""
    try:
        current, named = os.stat("/proc/%d/ns/net" % pid), os.stat(netns_path(netns))
    except (OSError, ForwardError):
        return False
    return (current.st_dev, current.st_ino) == (named.st_dev, named.st_ino)


def signal_forwarder(pid, pidfile, signum):
    """Send signum to pid if it still is the forwarder of pidfile. A pidfd pins the process
    between the check and the signal, so a pid reused meanwhile is never hit."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:
        pidfd = None  # kernel without pidfd_open (before 5.3)
    try:
        if forwarder_of(pid, pidfile) is None:
            return False
        if pidfd is None:
            os.kill(pid, signum)
        else:
            signal.pidfd_send_signal(pidfd, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise ForwardError("cannot signal forwarder pid %d: %s" % (pid, exc.strerror))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def terminate(pid, pidfile, timeout=STOP_TIMEOUT):
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        if not signal_forwarder(pid, pidfile, signum):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if forwarder_of(pid, pidfile) is None:
                return
            time.sleep(0.05)
    raise ForwardError("forwarder pid %d (%s) did not exit" % (pid, pidfile))


def remove_file(path):
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def locked_directory(path):
    """Serialise start and stop on pid files of one directory, so two starts racing on one
    pid file cannot both spawn a forwarder."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# The public functions

def status(pidfile):
    """The running forwarder of pidfile as a dict (pid, netns, listen, to, log, pidfile), or None."""
    pidfile = os.path.abspath(pidfile)
    pid = read_pid(pidfile)
    forwarder = forwarder_of(pid, pidfile) if pid else None
    return dict(forwarder, pid=pid, pidfile=pidfile) if forwarder else None


def start(netns, listen, to, pidfile, log=None):
    """Start a forwarder in the background unless pidfile names one with the same arguments.

    Returns status() plus "started" (False when it ran already). Raises ForwardError on bad
    arguments, a missing namespace, a port in use, or a forwarder with other arguments."""
    want = wanted(netns, listen, to)
    pidfile = os.path.abspath(pidfile)
    log = os.path.abspath(log) if log else None
    os.makedirs(os.path.dirname(pidfile), exist_ok=True)
    with locked_directory(os.path.dirname(pidfile)):
        current = status(pidfile)
        if current:
            same = all(current[key] == want[key] for key in want)
            if same and in_netns(current["pid"], netns):
                return dict(current, started=False)
            if not same:
                raise ForwardError("%s names a running forwarder with other arguments: running %s "
                                   "(pid %d), requested %s; stop it first"
                                   % (pidfile, describe(current), current["pid"], describe(want)))
            # Same arguments, but the namespace it entered has been replaced: it leads nowhere.
            terminate(current["pid"], pidfile)
        remove_file(pidfile)
        check_netns(netns)
        if os.geteuid() != 0:
            raise ForwardError("must run as root (entering a network namespace needs CAP_SYS_ADMIN)")
        pid = spawn(want, pidfile, log)
    return dict(want, pid=pid, pidfile=pidfile, log=log, started=True)


def stop(pidfile, timeout=STOP_TIMEOUT):
    """End the forwarder pidfile names and remove pidfile. Returns the pid that was ended,
    or None when none ran (a stale pid file is removed all the same)."""
    pidfile = os.path.abspath(pidfile)
    directory = os.path.dirname(pidfile)
    if not os.path.isdir(directory):
        return None
    with locked_directory(directory):
        current = status(pidfile)
        if current:
            terminate(current["pid"], pidfile, timeout)
        remove_file(pidfile)
    return current["pid"] if current else None


def spawn(forwarder, pidfile, log):
    """Run `run` detached (it forks once more, so it is nobody's child) and wait until it
    reports on a pipe that it listens, or why it cannot."""
    read_fd, write_fd = os.pipe()
    try:
        output = open(log, "ab") if log else subprocess.DEVNULL
        try:
            first = subprocess.Popen(run_command(forwarder, pidfile, log, write_fd), cwd="/",
                                     stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                     pass_fds=(write_fd,), start_new_session=True)
        finally:
            os.close(write_fd)
            if log:
                output.close()
        report = read_report(read_fd, time.monotonic() + READY_TIMEOUT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            first.wait(5)  # it forks and exits at once; this only reaps it
    finally:
        os.close(read_fd)
    pid, ready, error, timed_out = report
    see_log = "; see %s" % log if log else " (start it with --log to see why)"
    if ready and pid:
        return pid
    if pid:
        # It reports an error just before it exits: wait for that (or end it), so that no
        # forwarder outlives a failed start.
        terminate(pid, pidfile)
    if error:
        raise ForwardError(error)
    if timed_out:
        raise ForwardError("forwarder did not listen within %d s%s" % (READY_TIMEOUT, see_log))
    raise ForwardError("forwarder exited before it listened%s" % see_log)


def read_report(fd, deadline):
    """Lines `pid N`, then `ready` or `error MESSAGE`, until EOF or the deadline."""
    data, timed_out = b"", True
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while b"\nready\n" not in b"\n" + data and time.monotonic() < deadline:
            if not selector.select(max(0.0, deadline - time.monotonic())):
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                timed_out = False
                break
            data += chunk
    pid, ready, error = None, False, None
    for line in data.decode("utf-8", "replace").splitlines():
        word, _, rest = line.partition(" ")
        if word == "pid" and rest.isdigit():
            pid = int(rest)
        elif word == "ready":
            ready = True
        elif word == "error":
            error = rest
    return pid, ready, error, timed_out and not ready


# The forwarder

def log_line(message):
    sys.stderr.write("%s netns_forward[%d]: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), message))
    sys.stderr.flush()


def open_listener(listen):
    host, port = parse_listen(listen)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise ForwardError("%s is in use already" % format_address(host, port))
        raise ForwardError("cannot listen on %s: %s" % (format_address(host, port), exc.strerror))
    listener.setblocking(False)
    return listener


def enter_netns(name):
    """Move this process (single-threaded here, so all of it) into the named namespace.
    Sockets keep the namespace they were created in: the listener stays outside."""
    path = check_netns(name)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise ForwardError("cannot enter network namespace %r: %s"
                               % (name, os.strerror(ctypes.get_errno())))
    finally:
        os.close(fd)


def resolve(to):
    host, port = parse_address(to, "--to")
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ForwardError("--to %r: cannot resolve %r: %s" % (to, host, exc.strerror))
    return family, address


def write_pidfile(pidfile):
    temporary = "%s.%d.tmp" % (pidfile, os.getpid())
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write("%d\n" % os.getpid())
    os.replace(temporary, pidfile)


class Flow:
    """One direction of a connection: bytes read from src wait in buffer until dst takes them.
    Reading only into an empty buffer makes a slow reader slow the writer down."""

    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.buffer = b""
        self.ended = False  # src sent its last byte
        self.closed = False  # ... and dst has been told (shutdown for writing)

    def wants_read(self):
        return not self.ended and not self.buffer

    def pull(self):
        try:
            data = self.src.recv(CHUNK)
        except BlockingIOError:
            return
        if data:
            self.buffer = data
        else:
            self.ended = True

    def push(self):
        if self.buffer:
            try:
                sent = self.dst.send(self.buffer)
            except BlockingIOError:
                return
            self.buffer = self.buffer[sent:]
        if self.ended and not self.buffer and not self.closed:
            self.dst.shutdown(socket.SHUT_WR)
            self.closed = True


class Link:
    """A client connection and the connection made for it inside the namespace."""

    def __init__(self, client, upstream, peer):
        self.client, self.upstream, self.peer = client, upstream, peer
        self.flows = (Flow(client, upstream), Flow(upstream, client))
        self.masks = {client: 0, upstream: 0}
        self.connecting = True
        self.since = time.monotonic()
        self.gone = False

    def events(self, sock):
        if self.connecting:
            return selectors.EVENT_WRITE if sock is self.upstream else 0
        mask = 0
        for flow in self.flows:
            if flow.src is sock and flow.wants_read():
                mask |= selectors.EVENT_READ
            if flow.dst is sock and flow.buffer:
                mask |= selectors.EVENT_WRITE
        return mask

    def handle(self, sock, mask):
        if self.connecting:
            error = self.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise OSError(error, "connect: %s" % os.strerror(error))
            self.connecting = False
            return
        if mask & selectors.EVENT_READ:
            for flow in self.flows:
                if flow.src is sock and flow.wants_read():
                    flow.pull()
        # Write what there is at once rather than after one more round through select.
        for flow in self.flows:
            flow.push()

    def done(self):
        return all(flow.closed for flow in self.flows)


class Forwarder:
    def __init__(self, listener, target, wakeup):
        self.listener, self.wakeup = listener, wakeup
        self.family, self.address = target
        self.links = set()
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, listener)
        self.selector.register(wakeup, selectors.EVENT_READ, wakeup)

    def serve(self):
        """Until a signal writes to the wakeup socket."""
        while True:
            for key, mask in self.selector.select(timeout=1):
                if key.data is self.wakeup:
                    return
                if key.data is self.listener:
                    self.accept()
                else:
                    self.step(key.data, key.fileobj, mask)
            self.expire()

    def accept(self):
        for _ in range(ACCEPT_BATCH):
            try:
                client, peer = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # out of descriptors, say: keep the listener, slow down
                log_line("accept: %s" % exc)
                time.sleep(0.1)
                return
            self.connect(client, format_address(*peer[:2]))

    def connect(self, client, peer):
        try:
            upstream = socket.socket(self.family, socket.SOCK_STREAM)
        except OSError as exc:
            log_line("%s: no socket for the namespace side: %s" % (peer, exc))
            client.close()
            return
        link = Link(client, upstream, peer)
        try:
            for sock in (client, upstream):
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            error = upstream.connect_ex(self.address)
            if error not in (0, errno.EINPROGRESS):
                raise OSError(error, "connect: %s" % os.strerror(error))
        except OSError as exc:
            self.drop(link, exc)
            return
        self.links.add(link)
        self.update(link)

    def step(self, link, sock, mask):
        if link.gone:  # dropped earlier in this round of events
            return
        try:
            link.handle(sock, mask)
        except OSError as exc:
            self.drop(link, exc)
            return
        except Exception:  # a bug must cost one connection, not the forwarder
            self.drop(link, traceback.format_exc().strip())
            return
        if link.done():
            self.drop(link)
        else:
            self.update(link)

    def update(self, link):
        for sock, current in link.masks.items():
            mask = link.events(sock)
            if mask == current:
                continue
            if not current:
                self.selector.register(sock, mask, link)
            elif not mask:
                self.selector.unregister(sock)
            else:
                self.selector.modify(sock, mask, link)
            link.masks[sock] = mask

    def drop(self, link, reason=None):
        if reason is not None:
            log_line("%s: %s" % (link.peer, reason))
        for sock, mask in link.masks.items():
            if mask:
                self.selector.unregister(sock)
            sock.close()
        link.gone = True
        self.links.discard(link)

    def expire(self):
        now = time.monotonic()
        for link in [link for link in self.links if link.connecting]:
            if now - link.since > CONNECT_TIMEOUT:
                self.drop(link, "connect: no answer within %d s" % CONNECT_TIMEOUT)

    def close(self):
        for link in list(self.links):
            self.drop(link)
        self.selector.close()
        self.listener.close()


def run(netns, listen, to, pidfile, log=None, ready_fd=None):
    """The forwarder in the foreground; with ready_fd, detached first and reporting there."""
    pidfile = os.path.abspath(pidfile)
    if ready_fd is not None and os.fork():
        os._exit(0)
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    report = open(ready_fd, "w", encoding="utf-8") if ready_fd is not None else None

    def tell(line):
        if report:
            report.write(line + "\n")
            report.flush()

    tell("pid %d" % os.getpid())
    try:
        listener = open_listener(listen)
        enter_netns(netns)
        target = resolve(to)
        write_pidfile(pidfile)
    except (ForwardError, OSError) as exc:
        log_line("error: %s" % exc)
        tell("error %s" % exc)
        if report is None:
            raise
        return 1
    wakeup, wakeup_writer = socket.socketpair()
    for sock in (wakeup, wakeup_writer):
        sock.setblocking(False)
    signal.set_wakeup_fd(wakeup_writer.fileno())
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: None)
    forwarder = Forwarder(listener, target, wakeup)
    log_line("forwarding %s -> %s in netns %s" % (listen, format_address(*parse_address(to, "--to")), netns))
    tell("ready")
    if report:
        report.close()
    try:
        forwarder.serve()
    finally:
        forwarder.close()
        if read_pid(pidfile) == os.getpid():
            remove_file(pidfile)
        log_line("stopped")
    return 0


# Command line

def cmd_start(args):
    result = start(args.netns, args.listen, args.to, args.pidfile, args.log)
    state = "started" if result["started"] else "running already"
    print("%s: %s (pid %d, pidfile %s)" % (state, describe(result), result["pid"], result["pidfile"]))
    return 0


def cmd_stop(args):
    pid = stop(args.pidfile)
    print("stopped pid %d" % pid if pid else "not running (%s)" % os.path.abspath(args.pidfile))
    return 0


def cmd_status(args):
    current = status(args.pidfile)
    if not current:
        pid = read_pid(os.path.abspath(args.pidfile))
        stale = "; stale pid file names pid %d" % pid if pid else ""
        print("not running (%s%s)" % (os.path.abspath(args.pidfile), stale))
        return 1
    print("running: %s (pid %d, pidfile %s%s)" % (describe(current), current["pid"], current["pidfile"],
                                                  ", log %s" % current["log"] if current["log"] else ""))
    return 0


def cmd_run(args):
    if not os.path.isabs(args.pidfile):
        raise ForwardError("--pidfile %r: give an absolute path (status and stop find the forwarder "
                           "by the path on its command line)" % args.pidfile)
    return run(args.netns, args.listen, args.to, args.pidfile, args.log, args.ready_fd)


def build_parser():
    parser = argparse.ArgumentParser(description="Forward a port on this machine's loopback into a "
                                                 "network namespace.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (("start", cmd_start, "start a forwarder in the background"),
                             ("run", cmd_run, "run a forwarder in the foreground")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--netns", required=True, help="network namespace (/run/netns/NAME)")
        command.add_argument("--listen", required=True, metavar="127.0.0.1:PORT",
                             help="address to listen on, in 127.0.0.0/8")
        command.add_argument("--to", required=True, metavar="HOST:PORT",
                             help="address to connect to inside the namespace")
        command.add_argument("--pidfile", required=True, metavar="PATH")
        command.add_argument("--log", metavar="PATH", help="append the forwarder's messages here")
        if name == "run":
            command.add_argument("--ready-fd", type=int, metavar="FD",
                                 help="detach, and report `ready` or the error on this descriptor")
        command.set_defaults(func=func)
    for name, func, text in (("stop", cmd_stop, "stop the forwarder and remove the pid file"),
                             ("status", cmd_status, "exit 0 when the forwarder runs, 1 otherwise")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--pidfile", required=True, metavar="PATH")
        command.set_defaults(func=func)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ForwardError, OSError) as exc:
        sys.exit("netns_forward: error: %s" % exc)


if __name__ == "__main__":
    sys.exit(main())

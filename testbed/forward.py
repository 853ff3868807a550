#!/usr/bin/env python3
"""A TCP port on this machine's loopback that leads into a network namespace.

    python -m testbed.forward start --netns NAME --listen 127.0.0.1:PORT --to HOST:PORT --pidfile PATH [--log PATH]
    python -m testbed.forward status --pidfile PATH
    python -m testbed.forward stop --pidfile PATH

The lab's addresses (the Kubernetes API's virtual IP among them) exist only inside the
network namespaces testbed/testhosts.py creates, while kubectl, helm and Ansible run in the
machine's own network. The forwarder is one command line of maintained tools:

    systemd-socket-activate --accept --listen 127.0.0.1:PORT \\
        nsenter --net=/run/netns/NAME socat -t 3600 FD:3 TCP:HOST:PORT

systemd-socket-activate listens in the network it is started in and, for each connection,
starts the rest with the connection as descriptor 3; nsenter enters the namespace and execs
socat (it does not fork), which connects to HOST:PORT from inside and copies bytes both ways.
systemd-socket-proxyd would need neither nsenter nor socat per connection, but it drops a
connection as soon as one side half-closes it (systemd 252), where socat passes the half-close
on and keeps the other direction open. Each connection enters the namespace NAME names at that
moment, so a namespace deleted and created again is reached without a restart.

`start` runs the forwarder in the background and returns once it listens. It does nothing
when the pid file names a forwarder with the same namespace and addresses (the log path is
not compared), replaces a stale pid file, and fails when the pid file names a forwarder with
other arguments. `stop` ends the forwarder and the connections it carries and removes the pid
file; it is safe to repeat. `status` exits 0 and describes the forwarder when it runs, 1 when
not.

The listen address must be in 127.0.0.0/8: any other address would open the namespace to
other machines. Needs root (setns) and systemd-socket-activate, nsenter and socat. Other
modules may import start(netns, listen, to, pidfile, log=None), stop(pidfile) and
status(pidfile), and, for namespaces without a name, command() and launch(); they raise
ForwardError.
"""

import argparse
import contextlib
import errno
import fcntl
import ipaddress
import os
import signal
import socket
import sys
import time

NETNS_DIR = "/run/netns"
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
ACTIVATE = ["systemd-socket-activate", "--accept", "--listen"]
# Names the pid file on the forwarder's command line (each connection gets it in its
# environment too, unread): a pid may have been reused, the command line tells.
PIDFILE_VARIABLE = "PLINTH_FORWARD_PIDFILE"
# Seconds socat keeps a connection that one side has half-closed while the other still sends.
HALF_CLOSE_TIMEOUT = "3600"
READY_TIMEOUT = 10
STOP_TIMEOUT = 10


class ForwardError(Exception):
    """A forwarder cannot be started or stopped; the message says why."""


# Addresses and command lines

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


def wanted(netns, listen, to):
    """The arguments that make a forwarder what it is, in the form its command line carries."""
    netns_path(netns)
    return {"netns": netns, "listen": format_address(*parse_listen(listen)),
            "to": format_address(*parse_address(to, "--to"))}


def describe(forwarder):
    return "%s -> %s in netns %s" % (forwarder["listen"], forwarder["to"], forwarder["netns"])


def command(listen, to, netns_file, pidfile=None):
    """The forwarder: listen where it is started, connect to `to` inside the network namespace
    netns_file stands for (/run/netns/NAME, /proc/PID/ns/net, a descriptor under /proc)."""
    tag = ["--setenv", "%s=%s" % (PIDFILE_VARIABLE, pidfile)] if pidfile else []
    return (ACTIVATE + [listen] + tag
            + ["nsenter", "--net=" + netns_file, "socat", "-t", HALF_CLOSE_TIMEOUT, "FD:3", "TCP:" + to])


def parse_command(argv):
    """The arguments of a command() line for a named namespace and a pid file, or None."""
    if len(argv) != 13:
        return None
    found = {"netns": os.path.basename(argv[7]), "listen": argv[3], "to": argv[12][len("TCP:"):],
             "pidfile": argv[5].partition("=")[2]}
    again = command(found["listen"], found["to"], os.path.join(NETNS_DIR, found["netns"]), found["pidfile"])
    return found if argv == again else None


# Processes

def read_pid(pidfile):
    try:
        with open(pidfile, encoding="utf-8") as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else None


def forwarder_of(pid, pidfile):
    """The arguments of pid when it is the forwarder of this pid file, else None. A zombie
    has an empty command line and counts as gone."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = [os.fsdecode(arg) for arg in handle.read().split(b"\0")[:-1]]
    except OSError:
        return None
    found = parse_command(argv)
    return found if found and found.pop("pidfile") == pidfile else None


def listening(pid):
    """Whether process pid holds a listening TCP socket, looked up in its own network."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/%d/fd" % pid):
            with contextlib.suppress(OSError):
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                if link.startswith("socket:["):
                    inodes.add(link[len("socket:["):-1])
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open("/proc/%d/net/%s" % (pid, table), encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                    return True
    return False


def launch(argv, log=None, new_session=True, timeout=READY_TIMEOUT):
    """Start argv (a command() line, maybe behind nsenter) and return its pid once it listens.

    Its messages go to the file log, or where this process's go when log is None. With
    new_session it leads a process group of its own, the connections it starts included,
    which Ctrl-C on the caller's terminal does not reach. posix_spawn, not subprocess: the
    forwarder outlives its Popen object, which would warn about that."""
    output = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644) if log else None
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    if output is not None:
        actions += [(os.POSIX_SPAWN_DUP2, output, 1), (os.POSIX_SPAWN_DUP2, output, 2)]
    # systemd's tools log each connection at level info; keep the log to what went wrong.
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="notice")
    try:
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, setsid=new_session)
    except OSError as exc:
        raise ForwardError("cannot run %s: %s" % (argv[0], exc.strerror))
    finally:
        if output is not None:
            os.close(output)
    see_log = "; see %s" % log if log and log != os.devnull else ""
    deadline = time.monotonic() + timeout
    while not listening(pid):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            raise ForwardError("%s exited with status %d before it listened%s"
                               % (argv[0], os.waitstatus_to_exitcode(status), see_log))
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise ForwardError("%s did not listen within %d s%s" % (argv[0], timeout, see_log))
        time.sleep(0.02)
    return pid


def end(pid, pidfile, timeout=STOP_TIMEOUT):
    """Signal the process group of pidfile's forwarder pid (the listener and the connections
    it started), SIGKILL after timeout. Each signal comes right after the check that pid
    still is that forwarder, and a group id stays taken while any process of the group
    lives, so a pid reused meanwhile is not hit."""
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            if forwarder_of(pid, pidfile) is None:
                return
            os.killpg(pid, signum)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise ForwardError("cannot signal forwarder pid %d: %s" % (pid, exc.strerror))
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # when this process started it
            if forwarder_of(pid, pidfile) is None:
                return
            time.sleep(0.05)
    raise ForwardError("forwarder pid %d (%s) did not exit" % (pid, pidfile))


def check_free(listen):
    """Name a port in use before systemd-socket-activate exits on it in its own words."""
    host, port = parse_listen(listen)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the tool binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ForwardError("%s is in use already" % listen)
            raise ForwardError("cannot listen on %s: %s" % (listen, exc.strerror))


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
    """The running forwarder of pidfile as a dict (pid, netns, listen, to, pidfile), or None."""
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
    os.makedirs(os.path.dirname(pidfile), exist_ok=True)
    with locked_directory(os.path.dirname(pidfile)):
        current = status(pidfile)
        if current:
            if all(current[key] == want[key] for key in want):
                return dict(current, started=False)
            raise ForwardError("%s names a running forwarder with other arguments: running %s "
                               "(pid %d), requested %s; stop it first"
                               % (pidfile, describe(current), current["pid"], describe(want)))
        remove_file(pidfile)
        if not os.path.exists(netns_path(netns)):
            raise ForwardError("network namespace %r does not exist (no %s)" % (netns, netns_path(netns)))
        if os.geteuid() != 0:
            raise ForwardError("must run as root (entering a network namespace needs CAP_SYS_ADMIN)")
        check_free(want["listen"])
        pid = launch(command(want["listen"], want["to"], netns_path(netns), pidfile),
                     os.path.abspath(log) if log else os.devnull)
        with open(pidfile + ".tmp", "w", encoding="utf-8") as handle:
            handle.write("%d\n" % pid)
        os.replace(pidfile + ".tmp", pidfile)
    return dict(want, pid=pid, pidfile=pidfile, started=True)


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
            end(current["pid"], pidfile, timeout)
        remove_file(pidfile)
    return current["pid"] if current else None


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
    print("running: %s (pid %d, pidfile %s)" % (describe(current), current["pid"], current["pidfile"]))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(description="Forward a port on this machine's loopback into a "
                                                 "network namespace.")
    commands = parser.add_subparsers(dest="command", required=True)
    start_parser = commands.add_parser("start", help="start a forwarder in the background")
    start_parser.add_argument("--netns", required=True, help="network namespace (/run/netns/NAME)")
    start_parser.add_argument("--listen", required=True, metavar="127.0.0.1:PORT",
                              help="address to listen on, in 127.0.0.0/8")
    start_parser.add_argument("--to", required=True, metavar="HOST:PORT",
                              help="address to connect to inside the namespace")
    start_parser.add_argument("--pidfile", required=True, metavar="PATH")
    start_parser.add_argument("--log", metavar="PATH", help="append the forwarder's messages here")
    start_parser.set_defaults(func=cmd_start)
    for name, func, text in (("stop", cmd_stop, "stop the forwarder and remove the pid file"),
                             ("status", cmd_status, "exit 0 when the forwarder runs, 1 otherwise")):
        other = commands.add_parser(name, help=text)
        other.add_argument("--pidfile", required=True, metavar="PATH")
        other.set_defaults(func=func)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ForwardError, OSError) as exc:
        sys.exit("forward: error: %s" % exc)


if __name__ == "__main__":
    sys.exit(main())

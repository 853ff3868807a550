"""The hosts' layout (names, groups, addresses) and their network: a namespace per host,
joined by a veth pair to a bridge in one more namespace that holds the subnet's gateway.
"""

import ipaddress
import os
import re

from testbed.testhosts.common import die, run

DEFAULT_HOSTS = "cp-1:control_plane,gw-1:kong_nodes,worker-1:workers"
DEFAULT_SUBNET = "10.123.0.0/24"
KNOWN_GROUPS = ("control_plane", "kong_nodes", "ceph_nodes", "workers")
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$")
PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
FIRST_HOST_OFFSET = 11


# ---------------------------------------------------------------------------- layout


def parse_hosts(spec):
    hosts = []
    for item in [i.strip() for i in spec.split(",") if i.strip()]:
        name, _, groups = item.partition(":")
        groups = [g for g in groups.split("+") if g] or ["workers"]
        if not HOST_NAME.match(name) or name == "net":
            die("host name %r: use lower-case letters, digits and '-' (at most 22), not 'net'"
                % name)
        for group in groups:
            if not re.match(r"^[a-z_][a-z0-9_]*$", group):
                die("host %s: group %r is not a valid Ansible group name" % (name, group))
        if name in [h["name"] for h in hosts]:
            die("host %r is listed twice" % name)
        hosts.append({"name": name, "groups": groups})
    if not hosts:
        die("no hosts given")
    return hosts


def plan(args):
    try:
        subnet = ipaddress.ip_network(args.subnet)
    except ValueError as exc:
        die("--subnet %r: %s" % (args.subnet, exc))
    if subnet.version != 4 or not subnet.is_private:
        die("--subnet %s: use a private IPv4 network" % subnet)
    if not PREFIX.match(args.prefix):
        die("--prefix %r: use lower-case letters, digits and '-' (at most 31)" % args.prefix)
    hosts = parse_hosts(args.hosts)
    if len(hosts) + FIRST_HOST_OFFSET >= subnet.num_addresses - 1:
        die("--subnet %s is too small for %d hosts" % (subnet, len(hosts)))
    gateway = subnet.network_address + 1
    for index, host in enumerate(hosts):
        host["address"] = str(subnet.network_address + FIRST_HOST_OFFSET + index)
        host["netns"] = host["machine"] = "%s-%s" % (args.prefix, host["name"])
        host["bridge_port"] = "port%d" % index
    return {"prefix": args.prefix, "subnet": str(subnet), "gateway": str(gateway),
            "root_mode": args.root, "bridge_netns": args.prefix + "-net", "hosts": hosts}


# ---------------------------------------------------------------------------- network


def netns_exists(name):
    return os.path.exists(os.path.join("/run/netns", name))


def ip(*args, netns=None):
    cmd = ["ip"] + (["-n", netns] if netns else []) + list(args)
    run(cmd, quiet=True)


def make_network(layout):
    bridge = layout["bridge_netns"]
    prefixlen = ipaddress.ip_network(layout["subnet"]).prefixlen
    ip("netns", "add", bridge)
    ip("link", "set", "lo", "up", netns=bridge)
    ip("link", "add", "br0", "type", "bridge", netns=bridge)
    ip("addr", "add", "%s/%d" % (layout["gateway"], prefixlen), "dev", "br0", netns=bridge)
    ip("link", "set", "br0", "up", netns=bridge)
    for host in layout["hosts"]:
        ns = host["netns"]
        ip("netns", "add", ns)
        ip("link", "set", "lo", "up", netns=ns)
        # Both ends are created straight inside the namespaces: no link ever appears
        # on the machine's own network.
        ip("link", "add", host["bridge_port"], "type", "veth", "peer", "name", "eth0",
           "netns", ns, netns=bridge)
        ip("link", "set", host["bridge_port"], "master", "br0", "up", netns=bridge)
        ip("addr", "add", "%s/%d" % (host["address"], prefixlen), "dev", "eth0", netns=ns)
        ip("link", "set", "eth0", "up", netns=ns)
        ip("route", "add", "default", "via", layout["gateway"], netns=ns)


def remove_network(layout):
    names = [h["netns"] for h in layout.get("hosts", [])] + [layout.get("bridge_netns")]
    for name in names:
        if name and netns_exists(name):
            run(["ip", "netns", "delete", name], quiet=True)

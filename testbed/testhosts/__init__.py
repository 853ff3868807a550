"""Real Debian 12 test hosts for the `nodes` scenario and a lab, booted with systemd-nspawn.

    python -m testbed.testhosts [--prefix P] [--state-dir DIR] up [--hosts cp-1:control_plane,...]
                                                              [--subnet CIDR] [--root copy|overlay]
    python -m testbed.testhosts [--prefix P] [--state-dir DIR] inventory [-o PATH]
    python -m testbed.testhosts [--prefix P] [--state-dir DIR] status
    python -m testbed.testhosts [--prefix P] [--state-dir DIR] exec NAME [-- COMMAND...]
    python -m testbed.testhosts [--prefix P] [--state-dir DIR] ssh NAME [-- COMMAND...]
    python -m testbed.testhosts [--prefix P] [--state-dir DIR] down
    python -m testbed.testhosts build [--rebuild]           build (or find) the cached rootfs tarball

Each host boots a cached debootstrap rootfs (testbed/testhosts/packages.txt) with
`systemd-nspawn --boot`, on a plain copy of it or an overlay over one shared unpacked
copy, in a network namespace of its own (`<prefix>-<name>`). A veth pair joins it to a
bridge that lives in one more namespace (`<prefix>-net`), which holds the subnet's first
address and is every host's default route. The subnet exists only inside these
namespaces: nothing is added to the machine's own network, and nothing is routed out of
it. Ansible reaches a host over SSH with a ProxyCommand that connects from inside the
host's namespace.

Everything a run creates is recorded in the state directory (default
${PLINTH_CACHE:-~/.cache/plinth}/testhosts/<prefix>); `down` removes all of it and is
safe to repeat. Must run as root (namespaces, nspawn) on a machine with cgroup v1 or
hybrid hierarchies.
"""

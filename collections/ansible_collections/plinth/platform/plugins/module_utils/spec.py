# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Inventory variables -> a validated, normalized platform spec.

``build_spec`` is the only way in: it checks everything before anything is
rendered or any host is touched, and raises one ``SpecError`` listing every
problem.  The spec it returns is plain data (dicts, lists, strings, numbers)
with every default filled in, so generators never guess.
"""

from __future__ import absolute_import, annotations, division, print_function

import ipaddress
import posixpath

from ansible_collections.plinth.platform.plugins.module_utils import placement, schema as s, secrets
from ansible_collections.plinth.platform.plugins.module_utils.plain import plain
from ansible_collections.plinth.platform.plugins.module_utils.components import registry
from ansible_collections.plinth.platform.plugins.module_utils.components import apps as app_values, sizing
from ansible_collections.plinth.platform.plugins.module_utils import gitops as tree_layout

__metaclass__ = type

# Variables that steer a playbook run rather than describe the platform.
RUN_VARIABLES = frozenset(("plinth_render_dir",))

RESERVED_NAMESPACES = frozenset(("default", "kube-system", "kube-public", "kube-node-lease"))

CHART = s.Dict({
    "repo": s.Str(checks=[s.chart_repo]),
    "name": s.Str(checks=[s.dns_label]),
    "version": s.Str(checks=[s.semver]),
})

TAINT = s.Dict({
    "key": s.Str(checks=[s.label_key]),
    "value": s.Str("", checks=[s.label_value]),
    "effect": s.Str(choices=s.TAINT_EFFECTS),
})

POOL = s.Dict({
    "group": s.Str(),
    "labels": s.Map(keys=s.Field("str", checks=[s.label_key]),
                    values=s.Str(checks=[s.label_value]), default={}),
    "taints": s.List(TAINT, default=[]),
    "capacity": s.Dict({
        "cpu": s.Str(None, nullable=True, checks=[s.quantity]),
        "memory": s.Str(None, nullable=True, checks=[s.quantity]),
    }, default=None, nullable=True,
        doc="what each host of the pool offers pods (its allocatable CPU and memory, after the system's "
            "reservations); the requests of every workload placed on the pool must fit it times its hosts"),
})

RESOURCES = s.Resources("100m", "128Mi", "1", "512Mi")

APP = s.Dict({
    "name": s.Str(checks=[s.dns_label, s.helm_release_name]),
    "namespace": s.Str(None, nullable=True, checks=[s.dns_label]),
    "chart": CHART,
    "pool": s.Str("worker"),
    "replicas": s.Int(2, minimum=1),
    "autoscaling": s.Dict({
        "min": s.Int(minimum=1),
        "max": s.Int(minimum=1),
        "cpu_utilization": s.Int(70, minimum=1, maximum=100),
    }, default=None, nullable=True),
    "resources": RESOURCES,
    "port": s.Int(8080, minimum=1, maximum=65535),
    "image": s.Dict({"repository": s.Str(), "tag": s.Str()}, default=None, nullable=True),
    "ingress": s.Dict({"host": s.Str(checks=[s.dns_subdomain]), "path": s.Str("/")},
                      default=None, nullable=True),
    "egress": s.List(s.Str(), default=[]),
    # Scraped through a Service and ServiceMonitor of Plinth's own while monitoring is enabled.
    "metrics": s.Dict({
        "port": s.Int(minimum=1, maximum=65535,
                      doc="container port serving metrics; the app's own port when it serves them beside its API"),
        "path": s.Str("/metrics", doc="HTTP path of the metrics, starting with /"),
        "interval": s.Str("30s", checks=[s.duration], doc="scrape interval"),
    }, default=None, nullable=True, doc="where the app's pods serve Prometheus metrics; null: none"),
    "secrets": s.Map(keys=s.Field("str", checks=[s.dns_subdomain]),
                     values=s.Dict({
                         "path": s.Str(), "keys": s.List(s.Str(), minimum=None),
                         "refresh": s.Str(None, nullable=True,
                                          doc="how often it is re-read (1h, 30m); null: "
                                              "plinth_components.external_secrets.refresh_interval"),
                         "store": s.Str(None, nullable=True,
                                        doc="a ClusterSecretStore of plinth_components.external_secrets.stores "
                                            "to read instead of Vault"),
                     }),
                     default={}),
    "values": s.Map(default={}),
})

GITOPS = s.Dict({
    "repo_url": s.Str(checks=[s.git_url]),
    "revision": s.Str("main", checks=[s.git_branch]),
    "path": s.Str("", checks=[s.clone_path]),
    "checkout_dir": s.Str(None, nullable=True),
    "push": s.Bool(False),
})


def _top_fields():
    return {
        "plinth_environment": s.Str(checks=[s.dns_label]),
        "plinth_cluster_name": s.Str(checks=[s.dns_label]),
        "plinth_kubernetes_version": s.Str(checks=[s.semver]),
        "plinth_control_plane_endpoint": s.Dict({
            "host": s.Str(checks=[s.ip_or_host]),
            "port": s.Int(6443, minimum=1, maximum=65535),
        }),
        "plinth_control_plane_group": s.Str("control_plane"),
        "plinth_cluster_group": s.Str("k8s_cluster",
                                      doc="inventory group of every Kubernetes host (the control plane and "
                                          "every pool); the playbooks that touch the hosts target it"),
        "plinth_pod_cidr": s.Str("10.244.0.0/16", checks=[s.cidr]),
        "plinth_service_cidr": s.Str("10.96.0.0/12", checks=[s.cidr]),
        "plinth_host_network": s.Str(None, nullable=True, checks=[s.cidr],
                                     doc="the hosts' own subnet (every host address and the control-plane "
                                         "endpoint lie in it); needed by load-balancer address pools"),
        "plinth_chart_mirror": s.Str(None, nullable=True, checks=[s.chart_mirror],
                                     doc="a Helm repository (https://) or OCI registry path (oci://) that serves "
                                         "every remote chart under its own name and version, for air-gapped "
                                         "sites; charts kept in the GitOps repository are not affected"),
        "plinth_node_pools": s.Map(keys=s.Field("str", checks=[s.dns_label]), values=POOL),
        "plinth_gitops": GITOPS,
        "plinth_components": s.Dict(dict((c.key, _component_field(c)) for c in registry()), default={}),
        "plinth_apps": s.List(APP, default=[]),
    }


def _component_field(component):
    fields = {
        "enabled": s.Bool(component.enabled),
        "pool": s.Str(component.pool, nullable=True),
        "namespace": s.Str(component.namespace, checks=[s.dns_label]),
    }
    for release in component.releases:
        if release.chart is not None:
            fields[release.chart_option] = s.Dict({
                "repo": s.Str(release.chart["repo"], checks=[s.chart_repo]),
                "name": s.Str(release.chart["name"], checks=[s.dns_label]),
                "version": s.Str(release.chart["version"], checks=[s.semver]),
            })
    resources = sizing.option_field(component)
    if resources is not None:
        fields["resources"] = resources
    fields.update(component.options)
    return s.Dict(fields)


def host_addresses(groups, address_of):
    """``{host: {"ansible_host": address}}`` for every inventory host, as build_spec reads it.

    ``address_of(host)`` returns the host's ``ansible_host``, or None when it has none.
    """
    found = {}
    for host in sorted(set(h for members in (groups or {}).values() for h in members)):
        address = address_of(host)
        found[host] = {"ansible_host": address} if address else {}
    return found


def build_spec(variables, groups, hostvars=None, playbook_dir=None):
    """Validate inventory ``variables`` (the ``plinth_*`` ones) against ``groups``.

    ``hostvars`` maps host names to their variables; only ``ansible_host`` is read.
    ``playbook_dir`` anchors the controller's default paths (``spec["paths"]``); without it
    they are relative, as seen from the playbooks' folder.
    Returns the normalized spec, or raises ``SpecError`` with every problem found.
    """
    variables = plain(dict((k, v) for k, v in variables.items() if k not in RUN_VARIABLES))
    groups = plain(groups or {})
    hostvars = hostvars or {}
    errors = s.Errors()

    # The schema echoes bad values back, so it only ever sees the secrets redacted.
    variables = _redact_secrets(variables, errors)
    top = s.normalize(variables, s.Dict(_top_fields()), "", errors)

    spec = {
        "environment": top["plinth_environment"],
        "cluster_name": top["plinth_cluster_name"],
        "kubernetes_version": top["plinth_kubernetes_version"],
        "control_plane_endpoint": top["plinth_control_plane_endpoint"] or {},
        "pod_cidr": top["plinth_pod_cidr"],
        "service_cidr": top["plinth_service_cidr"],
        "host_network": top["plinth_host_network"],
        "chart_mirror": top["plinth_chart_mirror"],
        "gitops": top["plinth_gitops"] or {},
        "node_pools": {},
        "control_plane": {"group": top["plinth_control_plane_group"], "hosts": []},
        "groups": {"cluster": top["plinth_cluster_group"], "control_plane": top["plinth_control_plane_group"]},
        "hosts": {},
        "components": top["plinth_components"] or {},
        "apps": top["plinth_apps"] or [],
    }
    _resolve_hosts(spec, top["plinth_node_pools"] or {}, groups, hostvars, errors)
    _check_cluster_group(spec, groups, errors)
    spec["groups"]["storage"] = storage_group(spec)
    spec["paths"] = controller_paths(spec, playbook_dir)
    _check_network(spec, errors)
    _check_components(spec, errors)
    _check_apps(spec, errors)
    _cross_check(_check_sizing, errors, spec, errors)
    _check_local_charts(spec, errors)
    if not errors:
        _check_file_names(spec, errors)
    errors.raise_if_any()
    return spec


SECRET_RULE = ("secret material must not sit in plain inventory: keep it in Vault and reference it "
               "through an ExternalSecret (ansible-vault for bootstrap credentials)")


def _redact_secrets(variables, errors):
    """``variables`` with every secret replaced by a placeholder; each one is reported once."""
    clean, found = secrets.redacted(variables)
    for path, rule in found:
        errors.add(path, "<redacted>", "%s; %s" % (rule, SECRET_RULE))
    return clean


def _resolve_hosts(spec, pools, groups, hostvars, errors):
    cp = spec["control_plane"]
    if cp["group"] not in groups:
        errors.add("plinth_control_plane_group", cp["group"], "no such inventory group")
    else:
        cp["hosts"] = sorted(groups[cp["group"]])
        count = len(cp["hosts"])
        if count % 2 == 0:
            errors.add("plinth_control_plane_group", cp["group"],
                       "etcd needs an odd number of control-plane hosts (group %s has %d)" % (cp["group"], count))

    owner = {}
    for name in sorted(pools):
        # A pool that is not a mapping (null) is reported by the schema; it stays a known name.
        pool = dict(pools[name] or {"group": None, "labels": {}, "taints": []}, hosts=[], resolved=False)
        path = "plinth_node_pools.%s.group" % name
        group = pool.get("group")
        if group is not None and group not in groups:
            errors.add(path, group, "no such inventory group")
        elif group is not None:
            pool["hosts"] = sorted(groups[group])
            pool["resolved"] = True
        keys = [t["key"] for t in pool["taints"] if t]
        if len(set(keys)) != len(keys):
            errors.add("plinth_node_pools.%s.taints" % name, keys, "each taint key may appear once")
        for host in pool["hosts"]:
            owner.setdefault(host, []).append(name)
        spec["node_pools"][name] = pool

    for host, names in sorted(owner.items()):
        for other in names[1:]:
            first = spec["node_pools"][names[0]]
            second = spec["node_pools"][other]
            if _taint_set(first) != _taint_set(second):
                errors.add("plinth_node_pools.%s.group" % other, second["group"],
                           "host %s is also in pool %r and their taints conflict; a host may sit in "
                           "two pools only when their taints are the same" % (host, names[0]))
            clash = sorted(k for k in set(first["labels"]) & set(second["labels"])
                           if first["labels"][k] != second["labels"][k])
            if clash:
                errors.add("plinth_node_pools.%s.labels" % other, clash,
                           "host %s is also in pool %r, which sets these labels differently" % (host, names[0]))

    # kubeadm taints every control-plane host; a pool's workloads only tolerate the pool's own taints.
    for host in cp["hosts"]:
        for name in owner.get(host, []):
            if placement.CONTROL_PLANE_TAINT not in _taint_set(spec["node_pools"][name]):
                errors.add("plinth_node_pools.%s.group" % name, spec["node_pools"][name]["group"],
                           "host %s is also a control-plane host (group %s), tainted %s:%s by kubeadm; "
                           "a control-plane host may sit in a pool only when the pool has that taint"
                           % (host, cp["group"], placement.CONTROL_PLANE_TAINT["key"],
                              placement.CONTROL_PLANE_TAINT["effect"]))

    users = {}
    for host in sorted(set(cp["hosts"]) | set(owner)):
        vars_ = hostvars.get(host) or {}
        address = str(vars_.get("ansible_host") or host)
        spec["hosts"][host] = {"address": address}
        rule = s.ip_or_host(address)
        # A host without ansible_host is reached by its inventory name, which may be an ssh alias.
        if rule and (vars_.get("ansible_host") or s.DOTTED_NUMBERS.match(address)):
            where = "hostvars[%r].ansible_host" % host if vars_.get("ansible_host") else "host %r" % host
            errors.add(where, address, rule)
        if users.setdefault(address, host) != host:
            errors.add("hostvars[%r].ansible_host" % host, address,
                       "is also the address of host %s; every host needs its own address" % users[address])


def _check_cluster_group(spec, groups, errors):
    """The playbooks reach the hosts through the cluster group: it must hold every host the spec knows."""
    name = spec["groups"]["cluster"]
    if not isinstance(name, str):
        return  # reported by the schema
    if name not in groups:
        errors.add("plinth_cluster_group", name, "no such inventory group")
        return
    members = set(groups[name])
    for host in spec["control_plane"]["hosts"]:
        if host not in members:
            errors.add("plinth_cluster_group", name, "does not contain host %s of the control-plane group %s; "
                       "the playbooks that prepare and join the hosts target group %s"
                       % (host, spec["control_plane"]["group"], name))
    for pool_name, pool in sorted(spec["node_pools"].items()):
        for host in pool["hosts"]:
            if host not in members:
                errors.add("plinth_cluster_group", name, "does not contain host %s of pool %r (group %s); "
                           "the playbooks that prepare and join the hosts target group %s"
                           % (host, pool_name, pool["group"], name))


def storage_group(spec):
    """Inventory group of the hosts whose raw disks Rook-Ceph takes: its pool's group.

    The pool is plinth_components.rook_ceph.pool, else the one named ``storage``; ceph_nodes
    when neither resolves (as the preflight role has always read it).
    """
    rook_ceph = spec["components"].get("rook_ceph") or {}
    pool = spec["node_pools"].get(rook_ceph.get("pool") or "storage") or {}
    return pool.get("group") or "ceph_nodes"


def controller_paths(spec, playbook_dir):
    """Where the playbooks keep their files on the controller, beside the playbooks' folder.

    ``build_dir`` holds each environment's admin kubeconfig (``kubeconfig``, written by the
    control-plane stage), its etcd snapshots (``etcd_backups``, from playbooks/etcd_backup.yml)
    and, unless plinth_gitops.checkout_dir names another, the GitOps clone.
    """
    build_dir = ("%s/../build" % playbook_dir) if playbook_dir else "../build"
    return {
        "build_dir": build_dir,
        "kubeconfig": "%s/%s/admin.conf" % (build_dir, spec["environment"]),
        "etcd_backups": "%s/%s/etcd-backups" % (build_dir, spec["environment"]),
        "gitops_checkout": spec["gitops"].get("checkout_dir") or "%s/gitops" % build_dir,
    }


def _taint_set(pool):
    """The pool's taints as placement normalizes them, in an order that holds whatever their types."""
    return sorted((placement.normalized_taint(t) for t in pool["taints"] if t), key=repr)


def _check_network(spec, errors):
    nets = {}
    for key in ("pod_cidr", "service_cidr"):
        try:
            nets[key] = ipaddress.ip_network(spec[key])
        except (TypeError, ValueError):
            pass
    if len(nets) == 2 and nets["pod_cidr"].version == nets["service_cidr"].version \
            and nets["pod_cidr"].overlaps(nets["service_cidr"]):
        errors.add("plinth_service_cidr", spec["service_cidr"],
                   "overlaps plinth_pod_cidr %s; pod and service networks must be disjoint" % spec["pod_cidr"])
    for host, info in sorted(spec["hosts"].items()):
        try:
            address = ipaddress.ip_address(info["address"])
        except ValueError:
            continue
        for key, net in sorted(nets.items()):
            if address.version == net.version and address in net:
                errors.add("plinth_%s" % key, str(net), "contains the address %s of host %s" % (address, host))
    host = spec["control_plane_endpoint"].get("host")
    try:
        vip = ipaddress.ip_address(host)
    except (TypeError, ValueError):
        vip = None
    for key, net in sorted(nets.items()):
        if vip is not None and vip.version == net.version and vip in net:
            errors.add("plinth_control_plane_endpoint.host", host, "lies inside plinth_%s %s" % (key, net))
    _check_endpoint_is_no_host(spec, host, errors)
    _check_host_network(spec, vip, errors)


def _check_host_network(spec, vip, errors):
    """Every host address, and the VIP kube-vip announces beside them, lie in plinth_host_network."""
    try:
        net = ipaddress.ip_network(spec["host_network"])
    except (TypeError, ValueError):
        return  # unset, or reported by its own check
    for key, net2 in (("pod_cidr", spec["pod_cidr"]), ("service_cidr", spec["service_cidr"])):
        try:
            other = ipaddress.ip_network(net2)
        except (TypeError, ValueError):
            continue
        if other.version == net.version and other.overlaps(net):
            errors.add("plinth_host_network", str(net), "overlaps plinth_%s %s" % (key, other))
    for host, info in sorted(spec["hosts"].items()):
        address = host_ip(info["address"])
        if address is not None and (address.version != net.version or address not in net):
            errors.add("plinth_host_network", str(net), "does not contain the address %s of host %s"
                       % (address, host))
    if vip is not None and (vip.version != net.version or vip not in net):
        errors.add("plinth_control_plane_endpoint.host", str(vip),
                   "lies outside plinth_host_network %s; kube-vip announces it on the hosts' network" % net)


def _check_endpoint_is_no_host(spec, endpoint, errors):
    """The endpoint is a virtual IP of its own, or the one control-plane host itself (no VIP then)."""
    if not isinstance(endpoint, str):
        return
    control_plane = spec["control_plane"]["hosts"]
    for host, info in sorted(spec["hosts"].items()):
        if not _same_address(endpoint, info["address"]):
            continue
        if host not in control_plane:
            errors.add("plinth_control_plane_endpoint.host", endpoint,
                       "is the address of host %s, which is not a control-plane host; the endpoint must be a "
                       "virtual IP of its own (kube-vip) or the address of the only control-plane host" % host)
        elif len(control_plane) > 1:
            errors.add("plinth_control_plane_endpoint.host", endpoint,
                       "is the address of host %s, one of %d control-plane hosts; the endpoint must be a "
                       "virtual IP of its own (kube-vip), or the API goes down with that one host"
                       % (host, len(control_plane)))


def _same_address(first, second):
    one, two = host_ip(first), host_ip(second)
    if one is not None and two is not None:
        return one == two
    return first.lower() == second.lower()


def host_ip(text):
    """``text`` as an IP address, or None when it is a host name."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _check_components(spec, errors):
    for component in registry():
        settings = spec["components"].get(component.key)
        if not settings:
            continue
        path = "plinth_components.%s" % component.key
        pool = settings.get("pool")
        if pool is not None and pool not in spec["node_pools"]:
            errors.add(path + ".pool", pool, "no such node pool (known: %s)" % ", ".join(sorted(spec["node_pools"])))
        if settings.get("namespace") in RESERVED_NAMESPACES and component.key != "cilium":
            errors.add(path + ".namespace", settings["namespace"], "is reserved for Kubernetes itself")
        if settings.get("enabled") and component.check is not None:
            _cross_check(component.check, errors, spec, settings, errors, path)


def _cross_check(check, errors, *args):
    """Run ``check(*args)``; one that trips over a value already reported as malformed is skipped.

    The schema puts defaults or None where a value was malformed, and a cross-check may
    assume a shape that is not there: the problem is already reported, the others must be too.
    """
    try:
        check(*args)
    except (AttributeError, KeyError, TypeError, ValueError):
        if not errors:
            raise


def _check_apps(spec, errors):
    seen = {}
    platform_namespaces = dict((settings["namespace"], key) for key, settings in sorted(spec["components"].items())
                               if settings and settings.get("enabled") and settings.get("namespace"))
    releases = set(r.name for c in registry() for r in c.releases)
    root = root_application_name(spec)
    external_secrets = {}
    for index, app in enumerate(spec["apps"]):
        path = "plinth_apps[%d]" % index
        if not app or not app.get("name"):
            continue
        if app["name"] == root:
            errors.add(path + ".name", app["name"], "is the name of the root Application (plinth_cluster_name "
                       "followed by -root); each Argo CD Application needs its own name")
        if app["name"] in seen:
            errors.add(path + ".name", app["name"], "app names must be unique (also used by plinth_apps[%d])"
                       % seen[app["name"]])
        seen.setdefault(app["name"], index)
        if app["name"] in releases:
            errors.add(path + ".name", app["name"], "is taken by a platform release; each Argo CD "
                       "Application needs its own name (taken: %s)" % ", ".join(sorted(releases)))
        if app["namespace"] is None:
            app["namespace"] = app["name"]
        _check_app_secrets(app, path, external_secrets, errors)
        app_values.check_metrics(app, errors, path)
        if app["namespace"] in RESERVED_NAMESPACES:
            errors.add(path + ".namespace", app["namespace"], "is reserved for Kubernetes itself")
        elif app["namespace"] in platform_namespaces:
            errors.add(path + ".namespace", app["namespace"],
                       "is the namespace of plinth_components.%s; a business app needs a namespace of its own "
                       "(its policies and Pod Security level differ)" % platform_namespaces[app["namespace"]])
        if app["pool"] not in spec["node_pools"]:
            errors.add(path + ".pool", app["pool"], "no such node pool (known: %s)" % ", ".join(sorted(spec["node_pools"])))
        scaling = app.get("autoscaling")
        if scaling and scaling.get("min") and scaling.get("max"):
            if scaling["min"] > scaling["max"]:
                errors.add(path + ".autoscaling.min", scaling["min"],
                           "must not exceed autoscaling.max (%d)" % scaling["max"])
            elif not scaling["min"] <= app["replicas"] <= scaling["max"]:
                errors.add(path + ".replicas", app["replicas"], "must lie within autoscaling min..max (%d..%d)"
                           % (scaling["min"], scaling["max"]))
        res = app.get("resources") or {}
        for kind in ("cpu", "memory"):
            req = _quantity(((res.get("requests") or {}).get(kind)))
            lim = _quantity(((res.get("limits") or {}).get(kind)))
            if req is not None and lim is not None and req > lim:
                errors.add("%s.resources.requests.%s" % (path, kind), res["requests"][kind],
                           "must not exceed resources.limits.%s (%s)" % (kind, res["limits"][kind]))
        for i, dest in enumerate(app.get("egress") or []):
            if not isinstance(dest, str):
                continue  # reported by the schema
            rule = s.cidr(dest) if "/" in dest else s.dns_label(dest)
            if rule:
                errors.add("%s.egress[%d]" % (path, i), dest, "must be a CIDR or a namespace name: " + rule)
        if app.get("ingress") and not spec["components"].get("kong", {}).get("enabled"):
            errors.add(path + ".ingress", app["ingress"], "needs plinth_components.kong.enabled: true")
        if app.get("secrets") and not spec["components"].get("external_secrets", {}).get("enabled"):
            errors.add(path + ".secrets", sorted(app["secrets"]), "needs plinth_components.external_secrets.enabled: true")


def root_application_name(spec):
    """The app-of-apps' name, as gitops.root_application names it."""
    return "%s-root" % spec["cluster_name"]


def _check_app_secrets(app, path, owners, errors):
    """Each ExternalSecret has one owning Application, and a file name the file system takes."""
    for secret in sorted(app.get("secrets") or {}):
        where = "%s.secrets.%s" % (path, secret)
        owner = owners.setdefault((app["namespace"], secret), (path, app["name"]))
        if owner[1] != app["name"]:
            errors.add(where, secret, "is also an ExternalSecret of %s (app %s) in namespace %s; two Argo CD "
                       "Applications would own the same ExternalSecret and Secret"
                       % (owner[0], owner[1], app["namespace"]))
        file_name = "externalsecret-%s.yaml" % secret
        if len(file_name.encode("utf-8")) > s.FILE_NAME_MAX:
            errors.add(where, secret, "names the generated file %s of %d bytes; file names may have at most %d"
                       % (file_name[:40] + "...", len(file_name.encode("utf-8")), s.FILE_NAME_MAX))


CHART_RULE = "charts must live in the GitOps repository so Argo CD and the bootstrap install read the same chart"


def _check_local_charts(spec, errors):
    """A local chart path names a folder of the GitOps repository: Argo CD reads it there."""
    prefix = spec["gitops"].get("path")
    if not isinstance(prefix, str) or s.clone_path(prefix):
        return  # reported where plinth_gitops.path is checked
    for where, chart in _charts(spec):
        repo = (chart or {}).get("repo")
        if isinstance(repo, str) and not repo.startswith(("oci://", "http://", "https://")):
            rule = local_chart_rule(prefix.strip("/"), repo)
            if rule:
                errors.add(where, repo, rule)


def _charts(spec):
    """(inventory path of the chart, chart) of every app and every enabled component release."""
    found = [("plinth_apps[%d].chart.repo" % i, app.get("chart")) for i, app in enumerate(spec["apps"]) if app]
    for component in registry():
        settings = spec["components"].get(component.key) or {}
        if settings.get("enabled"):
            found += [("plinth_components.%s.%s.repo" % (component.key, release.chart_option),
                       settings.get(release.chart_option))
                      for release in component.releases if release.chart is not None]
    return found


def local_chart_rule(prefix, repo):
    """None when local chart ``repo`` lies in the clone, where Argo CD and helm both find it; else the rule."""
    path = repo[len("file://"):] if repo.startswith("file://") else repo
    if posixpath.isabs(path):
        return "is an absolute chart path; " + CHART_RULE
    # As gitops.local_chart_path resolves it, for Argo CD and for the bootstrap install alike.
    resolved = posixpath.normpath(posixpath.join(prefix, posixpath.normpath(path)))
    if resolved == ".." or resolved.startswith("../"):
        return "leaves the GitOps clone; " + CHART_RULE
    return None


def _check_file_names(spec, errors):
    """Every generated file name fits the file system; run on a valid spec only, as the render does."""
    owners = dict(("apps/%s" % app["name"], "plinth_apps[%d]" % i) for i, app in enumerate(spec["apps"]))
    owners.update(("infra/%s" % release.name, "plinth_components.%s" % component.key)
                  for component in registry() for release in component.releases)
    for path in sorted(tree_layout.documents(spec)):
        for part in path.split("/"):
            size = len(part.encode("utf-8"))
            if size > s.FILE_NAME_MAX:
                owner = owners.get("/".join(path.split("/")[:2]), "plinth_environment")
                errors.add(owner, part, "names a generated file of %d bytes; file names may have at most %d: "
                           "shorten the names it is made of" % (size, s.FILE_NAME_MAX))


_SUFFIX = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}


def _quantity(text):
    """A Kubernetes quantity as a float, or None when it is not one."""
    if not isinstance(text, str):
        return None
    match = s.QUANTITY.match(text)
    if not match:
        return None
    number, suffix = match.groups()
    try:
        value = float(number + (suffix if suffix and suffix[0] in "eE" else ""))
    except ValueError:
        return None
    return value * _SUFFIX.get(suffix or "", 1)


def _check_sizing(spec, errors):
    """Every platform workload requests no more than its limits, and every pool that states its
    capacity holds what is placed on it."""
    for component in registry():
        settings = spec["components"].get(component.key) or {}
        if not settings.get("enabled"):
            continue
        for workload in sizing.workloads(component):
            path = "plinth_components.%s.%s" % (component.key, sizing.option_path(workload))
            _check_within_limits(path, sizing.workload_resources(settings, workload), errors)
    _check_capacity(spec, errors)


def _check_within_limits(path, resources, errors):
    for kind in ("cpu", "memory"):
        request = (resources.get("requests") or {}).get(kind)
        limit = (resources.get("limits") or {}).get(kind)
        if _quantity(request) is not None and _quantity(limit) is not None and _quantity(request) > _quantity(limit):
            errors.add("%s.requests.%s" % (path, kind), request,
                       "must not exceed the limit (%s.limits.%s: %s)" % (path, kind, limit))


def _app_placements(spec):
    """``(pool, who, pods, containers, requests)`` of every business app, at its most replicas."""
    found = []
    for app in spec["apps"]:
        if not app or not app.get("name"):
            continue
        scaled = (app.get("autoscaling") or {}).get("max")
        pods = scaled or app.get("replicas") or 0
        found.append((app.get("pool"), "app %s%s" % (app["name"], " at autoscaling.max" if scaled else ""), pods, 1,
                      (app.get("resources") or {}).get("requests") or {}))
    return found


def _check_capacity(spec, errors):
    """Per pool and resource: the requests of everything placed there fit capacity x hosts."""
    load = {}
    for pool, who, pods, containers, requests in sizing.placed(spec, registry()) + _app_placements(spec):
        load.setdefault(pool, []).append((who, pods, containers, requests))
    for name, pool in sorted(spec["node_pools"].items()):
        capacity = pool.get("capacity") or {}
        hosts = len(pool["hosts"])
        for kind in ("cpu", "memory"):
            per_host = _quantity(capacity.get(kind))
            if per_host is None or not hosts:
                continue
            consumers = sorted(((pods * containers * (_quantity(requests.get(kind)) or 0), who, pods)
                                for who, pods, containers, requests in load.get(name, [])), reverse=True)
            total = sum(amount for amount, _who, _pods in consumers)
            if total > per_host * hosts:
                biggest = ", ".join("%s %s (%d pod%s)" % (who, _amount(kind, amount), pods, "" if pods == 1 else "s")
                                    for amount, who, pods in consumers[:5])
                errors.add("plinth_node_pools.%s.capacity.%s" % (name, kind), capacity[kind],
                           "the %s requests placed on pool %s total %s, above its capacity of %s x %d hosts = %s; "
                           "biggest: %s; add hosts, raise the capacity or lower requests "
                           "(plinth_components.<key>.resources, plinth_apps[].resources)"
                           % (kind, name, _amount(kind, total), capacity[kind], hosts,
                              _amount(kind, per_host * hosts), biggest))


def _amount(kind, value):
    """A total as a person reads it: CPU in cores, memory in GiB."""
    if kind == "cpu":
        return "%s CPU" % ("%.3f" % value).rstrip("0").rstrip(".")
    return "%sGi" % ("%.2f" % (value / 2 ** 30)).rstrip("0").rstrip(".")

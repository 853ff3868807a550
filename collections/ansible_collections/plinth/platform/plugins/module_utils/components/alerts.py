# -*- coding: utf-8 -*-
# Copyright: Plinth contributors
# SPDX-License-Identifier: Apache-2.0
"""Plinth's own alerting rules: what only the platform knows is wrong.

kube-prometheus-stack ships the generic Kubernetes rules; these cover the parts Plinth
adds, each rendered only when its component is enabled:

- Argo CD: an Application degraded (or missing) and one out of sync, from the
  application controller's ``argocd_app_info{health_status, sync_status}``.
- Vault: a sealed server (``vault_core_unsealed``, from Vault's telemetry) and no
  Vault server answering its metrics endpoint at all (``up``), which is what
  stopping the Vault pods looks like.
- External Secrets: an ExternalSecret whose Ready condition is False
  (``externalsecret_status_condition{name, namespace, condition, status}``).
- Ceph: the cluster's health from Rook's mgr prometheus module
  (``ceph_health_status``: 0 HEALTH_OK, 1 HEALTH_WARN, 2 HEALTH_ERR).
- Certificates: the kubelets' client and serving certificates
  (``kubelet_certificate_manager_client_ttl_seconds``,
  ``kubelet_certificate_manager_server_ttl_seconds``) and the client certificates
  presented to the API server (``apiserver_client_certificate_expiration_seconds``,
  a histogram of their remaining lifetime), against ``alerts.certificate_expiry``.
- etcd backups, only when ``alerts.etcd_backup_max_age`` is set: see ETCD_BACKUP_METRIC.

Every alert carries a ``severity`` label (critical or warning) and ``summary`` and
``description`` annotations that say what to look at first.
"""

from __future__ import absolute_import, annotations, division, print_function

import re
import textwrap

from ansible_collections.plinth.platform.plugins.module_utils import schema as s
from ansible_collections.plinth.platform.plugins.module_utils.components import common

__metaclass__ = type

RULE_NAME = "plinth-alerts"
PROMETHEUS_RULE_API = "monitoring.coreos.com/v1"

# The contract with the etcd backup timer on the control-plane hosts: after each
# snapshot that completed and was verified, it writes this gauge (Unix seconds) to a
# *.prom file in node-exporter's textfile directory (TEXTFILE_DIRECTORY), writing a
# temporary file and renaming it so a half-written file is never read.
ETCD_BACKUP_METRIC = "plinth_etcd_backup_last_success_timestamp_seconds"
# Host folder that node-exporter's textfile collector reads, on every node.
TEXTFILE_DIRECTORY = "/var/lib/node_exporter/textfile"

_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")

OPTIONS = s.Dict({
    "enabled": s.Bool(True, doc="Render Plinth's own alerting rules (a PrometheusRule beside "
                                "kube-prometheus-stack's default rules)."),
    "certificate_expiry": s.Str("7d", checks=[s.duration],
                                doc="Warn when a kubelet certificate, or a client certificate presented to "
                                    "the API server, expires within this long."),
    "etcd_backup_max_age": s.Str("13h", nullable=True, checks=[s.duration],
                                 doc="Alert when the newest etcd backup of any control-plane host is older "
                                     "than this, or none was ever reported. The control-plane hosts' backup "
                                     "timer (roles/etcd_backup, every 6h by default) publishes "
                                     + ETCD_BACKUP_METRIC + " through node-exporter: keep this above its "
                                     "interval. Null leaves the rule out."),
}, doc="Plinth's alerting rules.")


def seconds(duration):
    """A Prometheus-style duration (30d, 1h30m) in whole seconds."""
    return int(sum(int(n) * _SECONDS[unit] for n, unit in _PART.findall(duration)))


# Lines of the rendered rules stay short enough for a reader and for yamllint in the GitOps repository.
WIDTH = 100
_ACTION = re.compile(r"{{.*?}}")


def wrapped(text):
    """``text`` broken into lines of at most WIDTH characters, never inside a template action."""
    glued = _ACTION.sub(lambda match: match.group(0).replace(" ", "\0"), text)
    return textwrap.fill(glued, WIDTH, break_long_words=False, break_on_hyphens=False).replace("\0", " ")


def alert(name, expr, duration, severity, summary, description):
    rule = {"alert": name, "expr": expr}
    if duration:
        rule["for"] = duration
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {"summary": summary, "description": wrapped(description)}
    return rule


def argocd_group(spec, settings):
    namespace = spec["components"]["argocd"]["namespace"]
    return {"name": "plinth.argocd", "rules": [
        alert("PlinthArgoCDApplicationUnhealthy",
              'argocd_app_info{health_status=~"Degraded|Missing|Unknown"} > 0', "15m", "warning",
              "Argo CD Application {{ $labels.name }} is {{ $labels.health_status }}",
              "Application {{ $labels.name }} (project {{ $labels.project }}) has been "
              "{{ $labels.health_status }} for 15 minutes. Open it in Argo CD and look for the resource "
              "that is not healthy: a pod failing its probes, a PVC unbound, a Job failed. "
              "`kubectl -n %s get application {{ $labels.name }} -o yaml` shows the status of each resource."
              % namespace),
        alert("PlinthArgoCDApplicationOutOfSync",
              'argocd_app_info{sync_status="OutOfSync"} > 0', "30m", "warning",
              "Argo CD Application {{ $labels.name }} is out of sync",
              "Application {{ $labels.name }} has differed from the GitOps repository for 30 minutes although "
              "it syncs automatically: a sync keeps failing (see its last operation in Argo CD) or a resource "
              "is changed back by a controller (add it to ignoreDifferences, or stop that controller)."),
    ]}


def vault_group(spec, settings):
    namespace = spec["components"]["vault"]["namespace"]
    # The chart's ServiceMonitor scrapes the vault-active Service in HA mode, or every
    # server through vault-internal when told to; either job counts.
    target = 'namespace="%s", job=~"vault|vault-active|vault-internal"' % namespace
    return {"name": "plinth.vault", "rules": [
        alert("PlinthVaultSealed", "vault_core_unsealed{%s} == 0" % target, "5m", "critical",
              "Vault server {{ $labels.pod }} is sealed",
              "Vault server {{ $labels.pod }} in namespace %s has been sealed for 5 minutes: it serves no "
              "secret, and External Secrets cannot refresh any Secret through it. Unseal it (the vault stage of "
              "the playbook, or `vault operator unseal` with the key holders), or, with an auto-unseal seal, "
              "check that the seal's key service is reachable from the pod." % namespace),
        alert("PlinthVaultDown", "absent(up{%s} == 1)" % target, "5m", "critical",
              "No Vault server is answering",
              "No Vault server in namespace %s has answered Prometheus for 5 minutes: the pods are gone, not "
              "ready, or none of them is active. Check `kubectl -n %s get pods,statefulset vault` and the "
              "pods' events; a server that restarted comes back sealed." % (namespace, namespace)),
    ]}


def external_secrets_group(spec, settings):
    # The metric's own namespace label (the ExternalSecret's) becomes exported_namespace when
    # the scrape target's namespace (the controller's) takes its place.
    where = "{{ or $labels.exported_namespace $labels.namespace }}"
    return {"name": "plinth.external-secrets", "rules": [
        alert("PlinthExternalSecretNotReady",
              'externalsecret_status_condition{condition="Ready", status="False"} == 1', "15m", "warning",
              "ExternalSecret %s/{{ $labels.name }} is not syncing" % where,
              "ExternalSecret {{ $labels.name }} in namespace %s has not been Ready for 15 minutes, so its "
              "Secret is stale or missing. `kubectl -n %s describe externalsecret {{ $labels.name }}` names the "
              "cause: a Vault path or property that does not exist, a namespace role Vault does not know, or "
              "Vault sealed." % (where, where)),
    ]}


def ceph_group(spec, settings):
    namespace = spec["components"]["rook_ceph"]["namespace"]
    how = ("`ceph health detail` names the checks that fail: run it in the toolbox (rook_ceph.toolbox: true; "
           "`kubectl -n %s exec deploy/rook-ceph-tools -- ceph health detail`) or read the CephCluster's "
           "status." % namespace)
    return {"name": "plinth.ceph", "rules": [
        alert("PlinthCephHealthError", "ceph_health_status == 2", "5m", "critical",
              "Ceph cluster is in HEALTH_ERR",
              "The Ceph cluster has reported HEALTH_ERR for 5 minutes: some data may be unavailable and the "
              "volumes of the monitoring, Vault and database pods with it. " + how),
        alert("PlinthCephHealthWarning", "ceph_health_status == 1", "15m", "warning",
              "Ceph cluster is in HEALTH_WARN",
              "The Ceph cluster has reported HEALTH_WARN for 15 minutes (degraded placement groups, a full OSD, "
              "a clock skew between monitors...). " + how),
    ]}


def certificate_group(spec, settings):
    expiry = settings["alerts"]["certificate_expiry"]
    limit = seconds(expiry)
    kubelet = ("The kubelet renews its certificates itself: one close to expiry means renewal fails. Check the "
               "kubelet's log on that node and pending CertificateSigningRequests "
               "(`kubectl get csr`).")
    return {"name": "plinth.certificates", "rules": [
        alert("PlinthKubeletClientCertificateExpiring",
              "kubelet_certificate_manager_client_ttl_seconds < %d" % limit, "15m", "warning",
              "A kubelet client certificate expires within %s" % expiry,
              "The client certificate of the kubelet at {{ $labels.instance }} expires in "
              "{{ $value | humanizeDuration }}. " + kubelet),
        alert("PlinthKubeletServingCertificateExpiring",
              "kubelet_certificate_manager_server_ttl_seconds < %d" % limit, "15m", "warning",
              "A kubelet serving certificate expires within %s" % expiry,
              "The serving certificate of the kubelet at {{ $labels.instance }} expires in "
              "{{ $value | humanizeDuration }}. " + kubelet),
        alert("PlinthAPIServerClientCertificateExpiring",
              'apiserver_client_certificate_expiration_seconds_count{job="apiserver"} > 0\n'
              "and on (job, instance)\n"
              "histogram_quantile(0.01, sum by (job, instance, le) (rate("
              'apiserver_client_certificate_expiration_seconds_bucket{job="apiserver"}[5m]))) < %d' % limit,
              "15m", "warning",
              "A client certificate presented to the API server expires within %s" % expiry,
              "Clients are authenticating to the API server at {{ $labels.instance }} with certificates that "
              "expire within %s. Find them (kubeadm's own: `kubeadm certs check-expiration` on a control-plane "
              "host) and renew them before they are refused." % expiry),
    ]}


def etcd_backup_group(spec, settings):
    max_age = settings["alerts"]["etcd_backup_max_age"]
    return {"name": "plinth.etcd-backup", "rules": [
        alert("PlinthEtcdBackupMissing",
              "time() - max(%s) > %d or absent(%s)" % (ETCD_BACKUP_METRIC, seconds(max_age), ETCD_BACKUP_METRIC),
              "15m", "critical",
              "No etcd backup newer than %s" % max_age,
              "No control-plane host has reported a successful etcd backup in the last %s (or none ever did). "
              "Check the etcd backup timer and its last run on each control-plane host (`systemctl status "
              "plinth-etcd-backup.timer`, `journalctl -u plinth-etcd-backup`), and the file it writes in %s."
              % (max_age, TEXTFILE_DIRECTORY)),
    ]}


# component key (None: always) -> rule group, in the order they are rendered.
GROUPS = (
    ("argocd", argocd_group),
    ("vault", vault_group),
    ("external_secrets", external_secrets_group),
    ("rook_ceph", ceph_group),
    (None, certificate_group),
)


def groups(spec, settings):
    """The rule groups of the enabled components."""
    found = [make(spec, settings) for key, make in GROUPS if key is None or common.enabled(spec, key)]
    if settings["alerts"]["etcd_backup_max_age"]:
        found.append(etcd_backup_group(spec, settings))
    return found


def alert_names(spec, settings):
    """Every alert the rules define, in order."""
    return [rule["alert"] for group in groups(spec, settings) for rule in group["rules"]]


def prometheus_rule(spec, settings):
    """The PrometheusRule holding Plinth's alerts, or None when they are off."""
    if not settings["alerts"]["enabled"]:
        return None
    return {
        "apiVersion": PROMETHEUS_RULE_API,
        "kind": "PrometheusRule",
        "metadata": common.metadata(RULE_NAME, settings["namespace"]),
        "spec": {"groups": groups(spec, settings)},
    }

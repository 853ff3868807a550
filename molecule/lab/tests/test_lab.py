"""The lab's cluster, read back from the live API (through the controller's 127.0.0.1 port) and
from etcd on cp-1: nodes, pools, system pods, etcd membership, encryption at rest, scheduling."""

import base64
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

# Every test reads the cluster; cp-1 is where etcd is asked directly.
testinfra_hosts = ["cp-1"]

KUBECTL = [os.path.join(os.path.dirname(sys.executable), "kubectl"),
           "--kubeconfig", os.environ["K8S_AUTH_KUBECONFIG"]]
CONTROL_PLANES = ["cp-1", "cp-2", "cp-3"]
POOLS = {
    "gw-1": ({"node.kong.gateway": "true"}, [{"key": "node.kong.gateway", "value": "true", "effect": "NoSchedule"}]),
    "st-1": ({"node.ceph.storage": "true"}, [{"key": "node.ceph.storage", "value": "true", "effect": "NoSchedule"}]),
    "worker-1": ({"node.role": "worker"}, []),
}
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
ETCD = ("curl -sS --cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/healthcheck-client.crt "
        "--key /etc/kubernetes/pki/etcd/healthcheck-client.key https://127.0.0.1:2379")


def kubectl(*args, stdin=None):
    result = subprocess.run(KUBECTL + list(args), input=stdin, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def get(*args):
    return json.loads(kubectl("get", *args, "-o", "json"))


def etcd(host, path, body):
    return json.loads(host.check_output("%s%s -X POST -d %s" % (ETCD, path, "'" + json.dumps(body) + "'")))


def wait_ready(*what):
    result = subprocess.run(KUBECTL + ["wait", "--for=condition=Ready", *what, "--timeout=180s"],
                            capture_output=True, text=True, timeout=200)
    if result.returncode != 0:
        raise AssertionError("kubectl wait --for=condition=Ready %s failed (exit %d):\n%s%s\n%s"
                             % (" ".join(what), result.returncode, result.stdout, result.stderr, diagnosis()))


def diagnosis():
    """What a failed wait leaves to read: each node's and kube-system pod's conditions, and the latest events."""
    lines = []
    for kind, namespace in (("nodes", []), ("pods", ["--namespace", "kube-system"])):
        listing = subprocess.run(KUBECTL + ["get", kind, *namespace, "-o", "json"],
                                 capture_output=True, text=True, timeout=60)
        if listing.returncode != 0:
            lines.append("get %s: %s" % (kind, listing.stderr.strip()))
            continue
        for item in json.loads(listing.stdout)["items"]:
            status = item.get("status", {})
            conditions = " ".join("%s=%s(%s %s)" % (c["type"], c["status"], c.get("reason", ""),
                                                    c.get("lastTransitionTime", ""))
                                  for c in status.get("conditions", []))
            lines.append("%s %s on %s: %s %s" % (kind[:-1], item["metadata"]["name"],
                                                 item.get("spec", {}).get("nodeName", "-"),
                                                 status.get("phase", ""), conditions))
    events = subprocess.run(KUBECTL + ["get", "events", "--all-namespaces", "--sort-by=.lastTimestamp"],
                            capture_output=True, text=True, timeout=60)
    lines.extend((events.stdout or events.stderr).splitlines()[-40:])
    return "\n".join(lines)


def wait_pods_ready(namespace, timeout=300):
    """Every pod of the namespace Ready, polled until a deadline shared by all of them. (kubectl wait
    gives all the pods after the first one that is late "timed out", whether they are ready or not.)"""
    deadline = time.monotonic() + timeout
    while True:
        pods = get("pods", "--namespace", namespace)["items"]
        late = sorted(p["metadata"]["name"] for p in pods if not ready(p))
        if not late:
            return
        if time.monotonic() >= deadline:
            raise AssertionError("pods of %s not Ready after %d s: %s\n%s"
                                 % (namespace, timeout, ", ".join(late), diagnosis()))
        time.sleep(3)


@pytest.fixture(scope="module", autouse=True)
def settled():
    """A node is Ready a few seconds after site.yml gives it the pod network: wait (bounded), then check."""
    wait_ready("nodes", "--all")
    wait_pods_ready("kube-system")


def ready(item):
    """A node's or a pod's Ready condition is True."""
    return any(c["type"] == "Ready" and c["status"] == "True" for c in item["status"].get("conditions", []))


def test_every_node_is_ready_with_its_pool():
    nodes = dict((n["metadata"]["name"], n) for n in get("nodes")["items"])
    assert sorted(nodes) == sorted(CONTROL_PLANES + list(POOLS))
    assert [name for name, node in nodes.items() if not ready(node)] == []
    for name, (labels, taints) in POOLS.items():
        assert labels.items() <= nodes[name]["metadata"]["labels"].items(), name
        assert nodes[name]["spec"].get("taints", []) == taints, name
    for name in CONTROL_PLANES:
        assert CONTROL_PLANE_TAINT in nodes[name]["spec"]["taints"], name


def test_static_and_system_pods_run():
    pods = get("pods", "--namespace", "kube-system")["items"]
    running = dict((p["metadata"]["name"], p) for p in pods if p["status"].get("phase") == "Running"
                   and all(c.get("ready") for c in p["status"].get("containerStatuses", [])))
    for node in CONTROL_PLANES:
        for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-vip"):
            assert "%s-%s" % (component, node) in running, "%s-%s is not running and ready" % (component, node)
    proxies = [p for p in running.values() if p["metadata"]["name"].startswith("kube-proxy-")]
    assert len(proxies) == 6
    assert len([name for name in running if name.startswith("coredns-")]) == 2
    assert [p["metadata"]["name"] for p in pods if p["metadata"]["name"] not in running] == []


@pytest.mark.parametrize("node", CONTROL_PLANES + sorted(POOLS))
def test_kubelets_judge_the_shared_disk_by_what_is_left(node):
    """Each running kubelet took the lab's disk thresholds from the kubeadm configuration: no image
    deletion, eviction only near an absolute low, the other signals at the kubelet's defaults."""
    config = json.loads(kubectl("get", "--raw", "/api/v1/nodes/%s/proxy/configz" % node))["kubeletconfig"]
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["evictionHard"] == {"memory.available": "100Mi", "nodefs.available": "1Gi",
                                      "nodefs.inodesFree": "5%", "imagefs.available": "1Gi"}


def test_the_cluster_was_created_on_the_first_control_plane_host(host):
    """kubeadm init runs on the first control-plane host in inventory order, which keeps its init configuration."""
    assert host.file("/etc/plinth/kubeadm/init.yaml").exists


def test_etcd_has_three_members(host):
    members = etcd(host, "/v3/cluster/member/list", {})["members"]
    assert sorted(m["name"] for m in members) == CONTROL_PLANES


def test_secrets_are_encrypted_at_rest(host):
    name, secret = "plinth-check-%s" % uuid.uuid4().hex[:8], "lab-secret-%s" % uuid.uuid4().hex
    kubectl("create", "secret", "generic", name, "--namespace", "default", "--from-literal=value=" + secret)
    try:
        key = base64.b64encode(("/registry/secrets/default/" + name).encode()).decode()
        kvs = etcd(host, "/v3/kv/range", {"key": key})["kvs"]
        raw = base64.b64decode(kvs[0]["value"])
        assert raw.startswith(b"k8s:enc:secretbox:v1:"), raw[:40]
        assert secret.encode() not in raw
    finally:
        kubectl("delete", "secret", name, "--namespace", "default")


def sandbox_image(host):
    """The pause image containerd runs pods with: held by every node, whichever release it runs."""
    config = host.file("/etc/containerd/config.toml").content_string
    return [line.split("=", 1)[1].strip().strip('"') for line in config.splitlines()
            if line.strip().startswith(("sandbox_image", "sandbox ="))][0]


def deployment(name, replicas, image, pool_label=None, toleration=None):
    spec = {"containers": [{"name": "pause", "image": image, "imagePullPolicy": "Never"}],
            "terminationGracePeriodSeconds": 0}
    if pool_label:
        spec["nodeSelector"] = pool_label
    if toleration:
        spec["tolerations"] = [toleration]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


@pytest.fixture
def deployments():
    names = []

    def create(*docs):
        for doc in docs:
            names.append(doc["metadata"]["name"])
        kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))
        for name in names:
            rollout = subprocess.run(KUBECTL + ["rollout", "status", "deployment/" + name, "--namespace", "default",
                                                "--timeout=180s"], capture_output=True, text=True, timeout=240)
            if rollout.returncode != 0:
                pods = subprocess.run(KUBECTL + ["get", "pods", "--namespace", "default", "-l", "app=" + name,
                                                 "-o", "wide"], capture_output=True, text=True, timeout=60)
                raise AssertionError("deployment %s did not roll out:\n%s%s\n%s\n%s" % (
                    name, rollout.stdout, rollout.stderr, pods.stdout or pods.stderr, diagnosis()))
        return dict((name, [p["spec"]["nodeName"] for p in get("pods", "-n", "default", "-l", "app=" + name)["items"]])
                    for name in names)

    yield create
    for name in names:
        kubectl("delete", "deployment", name, "--namespace", "default", "--wait=true")


def test_the_scheduler_keeps_pools_apart(host, deployments):
    image = sandbox_image(host)
    gateway = deployment("plinth-check-gateway", 2, image, {"node.kong.gateway": "true"},
                         {"key": "node.kong.gateway", "operator": "Equal", "value": "true", "effect": "NoSchedule"})
    plain = deployment("plinth-check-plain", 4, image)
    placed = deployments(gateway, plain)
    assert set(placed["plinth-check-gateway"]) == {"gw-1"}
    assert len(placed["plinth-check-plain"]) == 4
    assert set(placed["plinth-check-plain"]) == {"worker-1"}


def test_pods_reach_each_other_across_nodes(host):
    """A pod on worker-1 answers a TCP connection from cp-1's pod network route."""
    pods = get("pods", "--namespace", "kube-system", "-l", "k8s-app=kube-dns")["items"]
    deadline = time.monotonic() + 60
    for pod in pods:
        while True:
            result = host.run("timeout 3 bash -c '</dev/tcp/%s/8080'" % pod["status"]["podIP"])
            if result.rc == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert result.rc == 0, "CoreDNS %s (%s on %s) is unreachable from cp-1" % (
            pod["metadata"]["name"], pod["status"]["podIP"], pod["spec"]["nodeName"])


def test_kubelets_serve_certificates_the_cluster_ca_verifies(host):
    """What metrics-server does: reach each kubelet by its InternalIP and verify it against the
    cluster CA. Self-signed kubelet certificates (no serverTLSBootstrap, or requests nobody
    approved) fail the handshake (curl exit 60)."""
    nodes = get("nodes")["items"]
    deadline = time.monotonic() + 60
    for node in nodes:
        ip = [a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"][0]
        while True:
            # Any HTTP answer (401: the kubelet wants credentials) means the TLS handshake passed.
            result = host.run("curl -sS -o /dev/null -w '%%{http_code}' --cacert /etc/kubernetes/pki/ca.crt "
                              "https://%s:10250/healthz" % ip)
            if result.rc == 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert result.rc == 0 and result.stdout in ("200", "401"), "kubelet of %s (%s): rc %d %s" % (
            node["metadata"]["name"], ip, result.rc, result.stderr)

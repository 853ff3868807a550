# Plinth: the README's commands. Everything installs itself into .venv.
PYTHON   ?= python3
VENV     ?= .venv
ENV      ?= production
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed

export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)
# The tools are packages at the root (python -m airgap.X, testbed.X, devtools.X); some read the collection.
export PYTHONPATH := $(abspath .):$(abspath collections)

.PHONY: demo render test test-nodes test-cluster test-secrets test-gitops test-lab lab lab-destroy unit rules lint sanity molecule bench acceptance clean

demo: $(STAMP)
	$(BIN)/ansible-playbook -i inventories/$(ENV) playbooks/render.yml

render: demo

# Needs root: the nodes stage boots real test hosts (systemd-nspawn).
test: $(STAMP)
	devtools/install_test_hosts.sh
	$(BIN)/python -m devtools.test

# Real Debian hosts (systemd-nspawn, root) running preflight, nodes.yml and the control plane's files.
test-nodes: $(STAMP)
	devtools/install_test_hosts.sh
	$(BIN)/python -m devtools.test nodes

# A real kube-apiserver and etcd on 127.0.0.1 (built from Go modules once, cached).
test-cluster: $(STAMP)
	$(BIN)/python -m devtools.test cluster

# The vault stage against a real OpenBao Raft cluster, and a real External Secrets controller
# (built from its Go module once, cached) syncing the rendered SecretStores and ExternalSecrets.
test-secrets: $(STAMP)
	devtools/install_test_hosts.sh
	$(BIN)/python -m devtools.test secrets

# The production example synced by a real Argo CD (built from source once, cached) into a
# real control plane, charts from a mirror on 127.0.0.1; the convergence stage waits wave
# by wave (root: Argo CD's controller runs in a network namespace of its own).
test-gitops: $(STAMP)
	devtools/install_test_hosts.sh
	$(BIN)/python -m devtools.test gitops

# A multi-node kubeadm cluster on this machine (root), built by site.yml from air-gapped
# artifacts: 3 control-plane hosts, a gateway, a storage host, a worker. Sizes and more:
#   make lab LAB_ARGS="--workers 2"      python -m testbed.lab --help
lab: $(STAMP)
	devtools/install_test_hosts.sh
	$(BIN)/python -m testbed.lab up $(LAB_ARGS)

lab-destroy: $(STAMP)
	$(BIN)/python -m testbed.lab down

# The molecule `lab` scenario: site.yml end to end on the lab, then Day 2 (upgrade, etcd, certificates, nodes).
test-lab: $(STAMP)
	devtools/install_test_hosts.sh
	$(BIN)/python -m devtools.test lab

unit: $(STAMP)
	$(BIN)/python -m devtools.test unit

# Plinth's alert rules through a real promtool (built from the Prometheus Go module once, cached).
rules: $(STAMP)
	$(BIN)/python -m devtools.test rules

lint: $(STAMP)
	$(BIN)/python -m devtools.test lint

sanity: $(STAMP)
	$(BIN)/python -m devtools.test sanity

molecule: $(STAMP)
	$(BIN)/python -m devtools.test molecule

bench: $(STAMP)
	$(BIN)/python -m devtools.bench

# Every Application's real upstream chart rendered as Argo CD renders it, then checked by a
# real kube-apiserver (server-side apply dry run, strict fields). Charts come from a folder:
#   make acceptance CHARTS_DIR=/srv/charts [ENV=staging] [ACCEPTANCE_ARGS="--skip store-api"]
acceptance: $(STAMP)
	$(BIN)/python -m devtools.acceptance --charts $(CHARTS_DIR) --env $(ENV) $(ACCEPTANCE_ARGS)

$(STAMP): requirements.txt devtools/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) devtools/install.sh
	touch $@

clean:
	rm -rf build $(VENV)

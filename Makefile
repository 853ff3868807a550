# Plinth: the README's commands. Everything installs itself into .venv.
PYTHON   ?= python3
VENV     ?= .venv
ENV      ?= production
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed

export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: demo render test test-nodes test-cluster test-gitops test-lab lab lab-destroy unit lint sanity molecule bench acceptance clean

demo: $(STAMP)
	$(BIN)/ansible-playbook -i inventories/$(ENV) playbooks/render.yml

render: demo

# Needs root: the nodes stage boots real test hosts (systemd-nspawn).
test: $(STAMP)
	scripts/install_test_hosts.sh
	$(BIN)/python scripts/test.py

# Real Debian hosts (systemd-nspawn, root) running preflight, nodes.yml and the control plane's files.
test-nodes: $(STAMP)
	scripts/install_test_hosts.sh
	$(BIN)/python scripts/test.py nodes

# A real kube-apiserver and etcd on 127.0.0.1 (built from Go modules once, cached).
test-cluster: $(STAMP)
	$(BIN)/python scripts/test.py cluster

# The production example synced by a real Argo CD (built from source once, cached) into a
# real control plane, charts from a mirror on 127.0.0.1; the convergence stage waits wave
# by wave (root: Argo CD's controller runs in a network namespace of its own).
test-gitops: $(STAMP)
	scripts/install_test_hosts.sh
	$(BIN)/python scripts/test.py gitops

# A multi-node kubeadm cluster on this machine (root), built by site.yml from air-gapped
# artifacts: 3 control-plane hosts, a gateway, a storage host, a worker. Sizes and more:
#   make lab LAB_ARGS="--workers 2"      scripts/lab.py --help
lab: $(STAMP)
	scripts/install_test_hosts.sh
	$(BIN)/python scripts/lab.py up $(LAB_ARGS)

lab-destroy: $(STAMP)
	$(BIN)/python scripts/lab.py down

# The molecule `lab` scenario: site.yml end to end on the lab, reset, a crash during a join.
test-lab: $(STAMP)
	scripts/install_test_hosts.sh
	$(BIN)/python scripts/test.py lab

unit: $(STAMP)
	$(BIN)/python scripts/test.py unit

lint: $(STAMP)
	$(BIN)/python scripts/test.py lint

sanity: $(STAMP)
	$(BIN)/python scripts/test.py sanity

molecule: $(STAMP)
	$(BIN)/python scripts/test.py molecule

bench: $(STAMP)
	$(BIN)/python scripts/bench.py

# Every Application's real upstream chart rendered as Argo CD renders it, then checked by a
# real kube-apiserver (server-side apply dry run, strict fields). Charts come from a folder:
#   make acceptance CHARTS_DIR=/srv/charts [ENV=staging] [ACCEPTANCE_ARGS="--skip store-api"]
acceptance: $(STAMP)
	$(BIN)/python scripts/acceptance.py --charts $(CHARTS_DIR) --env $(ENV) $(ACCEPTANCE_ARGS)

$(STAMP): requirements.txt scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/install.sh
	touch $@

clean:
	rm -rf build $(VENV)

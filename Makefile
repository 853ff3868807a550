# Plinth: the README's commands. Everything installs itself into .venv.
PYTHON   ?= python3
VENV     ?= .venv
ENV      ?= production
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed

export PATH := $(abspath $(BIN)):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: demo render test test-nodes unit lint sanity molecule bench clean

demo: $(STAMP)
	$(BIN)/ansible-playbook -i inventories/$(ENV) playbooks/render.yml

render: demo

test: $(STAMP)
	$(BIN)/python scripts/test.py

# Real Debian hosts (systemd-nspawn, root) running preflight and nodes.yml for real.
test-nodes: $(STAMP)
	scripts/install_test_hosts.sh
	$(BIN)/python scripts/test.py nodes

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

$(STAMP): requirements.txt scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) scripts/install.sh
	touch $@

clean:
	rm -rf build $(VENV)

# replicator.vsphere: build, test and demo targets.
# `make demo` and `make test` work on a fresh Debian machine: they install what they need (apt packages when
# run as root, a Python venv in .venv) before doing anything else.

SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
BUILD := $(CURDIR)/.build
LAB_DIR ?= $(CURDIR)/.lab
APT_PACKAGES := golang-go golang-github-vmware-govmomi-dev nbdkit qemu-utils libnbd-bin openssh-server openssh-client rsync shellcheck
PYTEST_OPTS ?=

# ansible-test and Python imports need the collection at .../ansible_collections/replicator/vsphere.
# A checkout that already sits there is used in place; any other checkout gets a symlinked root for imports
# and Ansible, and a copy for ansible-test (which refuses symlinks).
ifeq ($(notdir $(abspath $(CURDIR)/../..)),ansible_collections)
ACROOT := $(abspath $(CURDIR)/../../..)
SANITY_DIR := $(CURDIR)
else
ACROOT := $(BUILD)/acroot
SANITY_DIR := $(BUILD)/sanity/ansible_collections/replicator/vsphere
endif

export ANSIBLE_COLLECTIONS_PATH := $(ACROOT)
export PYTHONPATH := $(ACROOT)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: all deps venv acroot sanity units lint integration molecule test demo lab-up lab-down clean bench ee-context
.PHONY: bench-wan bench-scale

all: test

deps: $(BUILD)/.deps
$(BUILD)/.deps: Makefile
	@mkdir -p $(BUILD)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	fi
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $@

acroot:
	@if [ "$(ACROOT)" = "$(BUILD)/acroot" ]; then \
	  mkdir -p $(ACROOT)/ansible_collections/replicator && \
	  ln -sfn $(CURDIR) $(ACROOT)/ansible_collections/replicator/vsphere; fi

# ansible-test fetches a pip bootstrap script from the network; an offline stand-in seeds pip from ensurepip.
$(HOME)/.ansible/test/cache/get_pip_%.py: tests/tools/get_pip_offline.py
	@mkdir -p $(dir $@)
	cp $< $@

sanity: deps venv $(HOME)/.ansible/test/cache/get_pip_24_2.py
	@if [ "$(SANITY_DIR)" != "$(CURDIR)" ]; then \
	  rm -rf $(SANITY_DIR) && mkdir -p $(SANITY_DIR) && \
	  git ls-files -co --exclude-standard -z | rsync -a --from0 --files-from=- ./ $(SANITY_DIR)/ && \
	  (cd $(SANITY_DIR) && git init -q && git add -A); fi
	cd $(SANITY_DIR) && $(VENV)/bin/ansible-test sanity --venv --python 3.11 --color no

units: venv acroot
	$(PY) -m pytest -q -p no:cacheprovider tests/unit $(PYTEST_OPTS)

lint: venv acroot
	$(VENV)/bin/ansible-lint --offline -q

# Two pytest workers (one per core), each with its own lab; a test file stays on one worker. labd is built first so
# the workers do not race to build it.
PYTEST_WORKERS ?= 2
integration: deps venv acroot
	$(PY) tests/lab/labctl.py build
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile tests/integration $(PYTEST_OPTS)

# Role scenarios in extensions/molecule/*: each starts its own lab (default driver, no containers).
molecule: deps venv acroot
	$(PY) tests/lab/labctl.py build
	NO_COLOR=1 $(VENV)/bin/molecule test --all

test: sanity units lint integration molecule

lab-up: deps venv acroot
	$(PY) tests/lab/labctl.py --workdir $(LAB_DIR) up

lab-down: venv
	$(PY) tests/lab/labctl.py --workdir $(LAB_DIR) down

demo: deps venv acroot
	PY=$(PY) LAB_DIR=$(LAB_DIR) tests/lab/demo.sh

# Build context of an execution environment for AWX / Automation Controller (podman or docker builds it).
# The context holds the collection's files (execution-environment.yml); `ansible-builder build` does both steps.
ee-context: venv
	rm -rf $(BUILD)/ee && mkdir -p $(BUILD)/ee
	$(VENV)/bin/ansible-builder create -f execution-environment.yml --context $(BUILD)/ee/context

bench: deps venv acroot
	$(PY) tests/bench/bench_mover.py

# The mover over a WAN-like link (docs/performance.md "WAN"). Root is needed only for the two network namespaces,
# the TUN devices of the delay relay and tc; everything is removed at the end. ~5-10 min.
BENCH_WAN_OPTS ?=
bench-wan: deps venv acroot
	@if [ "$$(id -u)" != 0 ]; then echo "bench-wan needs root for its network namespaces (sudo make bench-wan)"; exit 1; fi
	$(PY) tests/bench/bench_wan.py $(BENCH_WAN_OPTS)

# playbooks/replicate.yml with 5, 10, 25 and 50 lab VMs (docs/performance.md "Scale"); no root needed. ~35-40 min on 2 cores.
BENCH_SCALE_OPTS ?=
bench-scale: deps venv acroot
	$(PY) tests/bench/bench_scale.py $(BENCH_SCALE_OPTS)

clean:
	-$(PY) tests/lab/labctl.py --workdir $(LAB_DIR) down
	rm -rf $(BUILD) $(LAB_DIR) tests/output

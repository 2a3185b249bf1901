# llama-grpc. `make run`: the whole stack on the embedded demo model. `make test`: everything.
# Both install what they need (a .venv, torch's CPU build, npm tools, docker-compose for `config`).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
NPROC ?= 1
DEMO_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/llama-grpc/demo-v1
NPM := npm --no-audit --no-fund --loglevel=error
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# `make run` serves the demo model unless CKPT_DIR (and TOKENIZER_PATH) point at real weights.
ifeq ($(origin CKPT_DIR),undefined)
CKPT_DIR := $(DEMO_DIR)/mp$(NPROC)
TOKENIZER_PATH ?= $(DEMO_DIR)/tokenizer.model
SYSTEM_PROMPT ?= You are a helpful assistant.
DEMO := 1
endif
SYSTEM_PROMPT_FLAG := $(if $(SYSTEM_PROMPT),--system-prompt "$(SYSTEM_PROMPT)",)

.PHONY: install install-test node compose-tool lint check-protos buf compose-config protos run test test-fast \
	bench clean

install: $(VENV)/.runtime

# torch first, pinned: the CPU build on this machine. An unpinned torch pulls a multi-GB CUDA build.
$(VENV)/.runtime: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[tools]'
	touch $@

install-test: $(VENV)/.test

$(VENV)/.test: $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[tools,test]'
	touch $@

node: examples/node/node_modules/.installed tools/node_modules/.installed

examples/node/node_modules/.installed: examples/node/package-lock.json
	$(NPM) ci --prefix examples/node
	touch $@

tools/node_modules/.installed: tools/package-lock.json
	$(NPM) ci --prefix tools
	touch $@

# Debian's docker-compose validates the compose files; no Docker engine is needed for `config`.
compose-tool:
	@command -v docker-compose >/dev/null || { \
		echo "installing Debian's docker-compose (for docker-compose config)"; \
		$(SUDO) apt-get install -y -qq docker-compose >/dev/null 2>&1 || \
		{ $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq docker-compose >/dev/null; }; }

protos: install-test
	$(PY) scripts/gen_protos.py

check-protos: install-test
	$(PY) scripts/gen_protos.py --check

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

buf: node
	tools/node_modules/.bin/buf lint protos

compose-config: compose-tool
	docker-compose config -q
	docker-compose -f docker-compose.yml -f docker-compose.gpu.yml config -q
	docker-compose --profile test config -q

run: install
ifdef DEMO
	$(PY) -m demo --out "$(DEMO_DIR)"
endif
	$(PY) -m llama_grpc.stack --ckpt-dir "$(CKPT_DIR)" --tokenizer-path "$(TOKENIZER_PATH)" --nproc $(NPROC) \
		$(SYSTEM_PROMPT_FLAG) --grpcurl $(VENV)/bin/grpcurl

test: install-test node compose-tool lint check-protos buf compose-config
	$(PY) -m pytest

$(VENV)/.bench: $(VENV)/.test
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[tools,test,bench]'
	touch $@

# Benchmarks (not tests): each prints its figures; BENCHMARKS.md records them with the machine.
RESULTS := benchmarks/results

bench: $(VENV)/.bench
	mkdir -p $(RESULTS)
	$(PY) -m benchmarks.kv_cache > $(RESULTS)/kv_cache.txt && cat $(RESULTS)/kv_cache.txt
	$(PY) -m benchmarks.tokenizer > $(RESULTS)/tokenizer.txt && cat $(RESULTS)/tokenizer.txt
	$(PY) -m benchmarks.model_throughput > $(RESULTS)/model_throughput.txt && cat $(RESULTS)/model_throughput.txt
	$(PY) -m benchmarks.compare --out $(RESULTS) > $(RESULTS)/compare.txt && cat $(RESULTS)/compare.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache examples/node/node_modules tools/node_modules

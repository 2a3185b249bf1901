# llama-grpc: `make run` starts the whole stack on the demo model, `make test` checks everything.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint protos check-protos run clean

install: $(STAMP)

# torch first, pinned: the CPU build on this machine. An unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

protos: install
	$(PY) scripts/gen_protos.py

check-protos: install
	$(PY) scripts/gen_protos.py --check

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install lint check-protos
	$(PY) -m pytest

run: install
	$(PY) -m model_svc.demo_generate

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

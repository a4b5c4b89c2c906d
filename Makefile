# Two commands for a newcomer: `make run` (the whole stack) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: install run test test-fast lint fmt migrate seed bench soak fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,embedded]'
	rm -f $(VENV)/.installed-*
	touch $@

run: install  ## the whole stack on this machine, gateway on :8000 (Ctrl-C stops it)
	$(PY) -m services.devstack $(RUN_ARGS)

migrate: install  ## upgrade every service's schema (DATABASE_URL)
	$(PY) -m services.common.migrate upgrade

test: install  ## everything the tests need, then the whole suite
	PYTHON=$(PY) bash deploy/tools/install-tools.sh
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check services gateway migrations tests
	$(PY) -m ruff format --check services gateway migrations tests
	$(PY) -m mypy services gateway

fmt: install
	$(PY) -m ruff check --fix services gateway migrations tests
	$(PY) -m ruff format services gateway migrations tests

bench: install  ## the benchmark suite; writes docs/benchmarks.md and docs/benchmarks.png
	bash deploy/tools/install-wrk.sh
	PYTHON=$(PY) bash deploy/tools/install-k6.sh
	$(PY) -m tests.load.bench --out docs/benchmarks.md

fuzz: install  ## schemathesis over the merged OpenAPI, every phase, a larger budget (docs/fuzzing.md)
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-200} FUZZ_PHASES=examples,coverage,fuzzing,stateful \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -p no:cacheprovider -s tests/fuzz

soak: install  ## steady mixed load on the real stack; RSS/fds of every process must level off
	mkdir -p .data
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SOAK_SECONDS=$${SOAK_SECONDS:-600} SOAK_REPORT=.data/soak-report.md \
	  $(PY) -m pytest -p no:cacheprovider -q -s tests/faults/test_soak.py

clean:
	rm -rf .data $(VENV)

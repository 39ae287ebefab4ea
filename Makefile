# Civic Pay — two commands: `make run` serves the portal, `make test` runs the whole suite.
# Everything lives in .venv; nothing is installed system-wide except by .ci/run.

SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The first Python 3.11+ on the PATH (override: make run PYTHON=/path/to/python3.12).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
HOST ?= 127.0.0.1
PORT ?= 5000
# Parallel test workers (pytest-xdist); "auto" = one per core.
WORKERS ?= auto
FLASK := CIVICPAY_ENV=development $(BIN)/flask --app wsgi
# The set-up steps print their own summaries; keep the log quiet while they run.
SETUP_FLASK := LOG_LEVEL=WARNING $(FLASK)

.PHONY: run setup setup-dev lint test test-sqlite test-postgresql translations clean

run: setup translations
	$(SETUP_FLASK) db upgrade
	$(SETUP_FLASK) demo setup
	$(SETUP_FLASK) erp sync
	@echo "Civic Pay: http://$(HOST):$(PORT)  (stop with Ctrl+C)"
	$(FLASK) run --host $(HOST) --port $(PORT)

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then echo "Civic Pay needs Python 3.11 or newer: install it, or run make PYTHON=/path/to/python3.11" >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamps re-run the install whenever pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run

setup: $(VENV)/.installed-run
setup-dev: $(VENV)/.installed-dev

translations: setup
	PYBABEL=$(BIN)/pybabel scripts/translations.sh compile

# The whole suite on SQLite, then on PostgreSQL (TEST_DATABASE_URL, else 127.0.0.1:5432, else a
# throwaway server started from the installed binaries). Browser tests need Chromium
# (apt-get install chromium); without it they are skipped loudly, or fail when CI is set.
test: lint test-sqlite test-postgresql

# The lint gate: ruff (configured in pyproject.toml) and the layer contract (import-linter):
# an import that runs up the layers fails here, before any test runs.
lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

test-sqlite: setup-dev translations
	CIVICPAY_TEST_DB=sqlite $(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

test-postgresql: setup-dev translations
	CIVICPAY_TEST_DB=postgresql $(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) test-results .pytest_cache
	find . -name __pycache__ -prune -exec rm -rf {} +

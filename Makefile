# Two commands do everything on a fresh clone: `make run` and `make test`.
# All state lives under CHURN_HOME (default ./data); point it at an empty folder for a separate installation.
SHELL := /bin/bash
PYTHON ?= python3
# uv on PATH if there is one (with the virtualenv activated: the project's own .venv/bin/uv, a dev
# dependency), else the project's own once it is installed, else as a module of the machine's Python
# (bootstrapped with pip below).
UV := $(or $(shell command -v uv 2>/dev/null),$(wildcard $(CURDIR)/.venv/bin/uv),$(PYTHON) -m uv)
RUN := $(UV) run --frozen --no-sync
export CHURN_HOME ?= $(CURDIR)/data

.PHONY: install manifest run test test-fast docs-test check lint types security format ui serve mlflow-ui

# Bootstrap uv with pip if the machine lacks it, then install exactly what uv.lock says.
.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet "uv>=0.5"
	$(UV) sync --frozen
	@touch $@

install: .venv/.installed

# Parse the dbt project so the Dagster code location loads (tests and CI have no `dagster dev` to do it).
manifest: install
	$(RUN) dagster-dbt project prepare-and-package --file churn_assets/transform/project.py

run: manifest
	$(RUN) churn run

# The tiers (CONTRIBUTING.md): unit tests in seconds; the whole suite in random order (pytest-randomly, its
# seed in the header) with the coverage of churn_assets and serving, failing under COVERAGE_FLOOR percent;
# the docs' examples alone. PYTEST_ARGS adds to any of them (e.g. "-p randomly -p no:randomly", "-k drift").
COVERAGE_FLOOR ?= 70
test: manifest
	$(RUN) pytest --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) --durations=15 $(PYTEST_ARGS)

test-fast: manifest
	$(RUN) pytest -m "not integration and not e2e" $(PYTEST_ARGS)

docs-test: manifest
	$(RUN) pytest tests/docs $(PYTEST_ARGS)

# Every static gate: lint (Python and SQL), types, security scans.
check: lint types security

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: install
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

ui: manifest
	$(RUN) churn ui

# Prediction server for the registry's champion, port CHURN_SERVE_PORT (default 8000).
serve: install
	$(RUN) python -m serving

# MLflow UI on the same tracking store (parent runs, nested trials, registered model and aliases), at
# CHURN_MLFLOW_UI_HOST:CHURN_MLFLOW_UI_PORT (default 127.0.0.1:5000).
mlflow-ui: install
	eval "$$($(RUN) churn env)" && $(RUN) mlflow ui --backend-store-uri "$$MLFLOW_TRACKING_URI" \
		--host "$$CHURN_MLFLOW_UI_HOST" --port "$$CHURN_MLFLOW_UI_PORT"

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
# the docs' examples alone. PYTEST_ARGS adds to any of them: "--randomly-seed=N" replays an order,
# "-p no:randomly" keeps the file order, "-k drift" selects.
COVERAGE_FLOOR ?= 75
test: manifest
	$(RUN) pytest --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) --durations=15 $(PYTEST_ARGS)

test-fast: manifest
	$(RUN) pytest -m "not integration and not e2e" $(PYTEST_ARGS)

docs-test: manifest
	$(RUN) pytest tests/docs $(PYTEST_ARGS)

# Every static gate that runs offline: lint (Python and SQL), types, bandit. `make security` adds pip-audit on
# uv.lock, which needs PyPI's per-version JSON API or OSV (the GitHub workflow runs it; this network has neither).
check: lint types audit-code

# Python (ruff) and the dbt project's SQL (sqlfluff with the dbt templater, rules in dbt_project/.sqlfluff):
# dbt compiles every model against an in-memory DuckDB, so no warehouse is needed.
lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	cd dbt_project && CHURN_DUCKDB_PATH=:memory: $(RUN) sqlfluff lint

# Static types of churn_assets and serving ([tool.mypy] in pyproject.toml).
types: install
	$(RUN) mypy

# Known vulnerabilities of every package uv.lock pins, and bandit on the code ([tool.bandit] in pyproject.toml).
.PHONY: audit-deps audit-code
security: audit-deps audit-code

# pip-audit reads exactly what the lock pins (hashes included) and looks each version up on PyPI; --strict
# fails when a package cannot be looked up, so an unreachable advisory service is a failure, not a pass.
audit-deps: install
	requirements="$$(mktemp)" && trap 'rm -f "$$requirements"' EXIT && \
	$(UV) export --frozen --no-emit-project --format requirements-txt --quiet --output-file "$$requirements" && \
	$(RUN) pip-audit --strict --disable-pip --require-hashes --progress-spinner off -r "$$requirements"

audit-code: install
	$(RUN) bandit -c pyproject.toml -r churn_assets serving benchmarks deploy --quiet

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

# The deployed topology on this machine without containers (deploy/stack.py, docs/deployment.md): PostgreSQL,
# the MLflow server, the graph materialized on them, two prediction servers behind nginx, the exporter,
# Prometheus and Alertmanager, configured from the files docker-compose.yml mounts. State in $CHURN_HOME/stack.
.PHONY: stack stack-down image
# The image (Dockerfile), on a base made from Debian's packages (deploy/image/build-base.sh): no image registry
# is reachable here. Elsewhere, `docker build .` takes the Dockerfile's default base (official python slim).
# --format=docker: podman's default OCI format drops HEALTHCHECK.
IMAGE ?= localhost/churn-mlops:latest
BASE_IMAGE ?= localhost/churn-base:bookworm
image:
	bash deploy/image/build-base.sh $(BASE_IMAGE)
	podman build --isolation=chroot --format=docker --build-arg BASE_IMAGE=$(BASE_IMAGE) --tag $(IMAGE) .

stack: manifest
	$(RUN) python -m deploy.stack up

stack-down: install
	$(RUN) python -m deploy.stack down

# One image for every role of the stack (docker-compose.yml picks the role with the service's `command`):
# the prediction server by default, the MLflow server, the Dagster code server, webserver and daemon, and the
# pipeline exporter. All roles run the same locked dependencies and the same code, so one image is built,
# scanned and promoted once. Built and run in tests/deploy/test_image.py; docs/deployment.md shows how.
#
# The base is a build argument: the official slim Python image by default, or a local base made from Debian's
# own packages where no registry is reachable (deploy/image/build-base.sh). Builder and final stages use the
# same base, so the virtual environment's interpreter links resolve in the final image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# uv as pinned in uv.lock, from PyPI (its own image registry may be out of reach).
ARG UV_VERSION=0.13.9
# The base's python3 (first on PATH), never a downloaded interpreter; a compiled, copied (not linked) venv.
ENV UV_PYTHON=python3 \
    UV_PYTHON_PREFERENCE=only-system \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    PATH=/app/.venv/bin:$PATH
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --no-install-project
COPY . .
# The project itself, then the dbt manifest that @dbt_assets needs at import (Makefile `manifest`).
RUN /opt/uv/bin/uv sync --frozen --no-dev \
    && dagster-dbt project prepare-and-package --file churn_assets/transform/project.py

FROM ${BASE_IMAGE}
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CHURN_HOME=/var/lib/churn \
    DAGSTER_HOME=/var/lib/churn/dagster \
    CHURN_DAGSTER_YAML=/app/deploy/dagster/dagster.yaml \
    CHURN_MLFLOW_TRACKING_URI=http://mlflow:5000 \
    CHURN_SERVE_HOST=0.0.0.0 \
    CHURN_SERVE_PORT=8000
RUN useradd --no-log-init --uid 10001 --user-group --no-create-home --home-dir /var/lib/churn churn \
    && install -d -o churn -g churn -m 0700 /var/lib/churn
WORKDIR /app
COPY --from=builder /app /app
# dbt writes its run artefacts and logs next to the project; nothing else under /app is writable.
RUN install -d -o churn -g churn /app/dbt_project/logs && chown -R churn:churn /app/dbt_project/target
USER 10001
VOLUME ["/var/lib/churn"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['CHURN_SERVE_PORT'] + '/health', timeout=4)"]
CMD ["python", "-m", "serving"]

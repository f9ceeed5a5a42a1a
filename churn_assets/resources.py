"""Dagster resources: thin, configurable handles on the state that churn_assets.settings locates."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb


@contextmanager
def env_override(name: str, value: str) -> Iterator[None]:
    """Set an environment variable for child processes started inside the block, then restore it."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file. DuckDB admits one writer: every asset using it is in the `duckdb` pool."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = duckdb.connect(self.path, read_only=read_only)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def dbt_env(self) -> Iterator[None]:
        """Point the dbt profile (profiles.yml reads CHURN_DUCKDB_PATH) at this warehouse for a dbt call."""
        with env_override("CHURN_DUCKDB_PATH", self.path):
            yield


class StateDirs(dg.ConfigurableResource):
    """Where landed batches wait and where reports are written."""

    landing_dir: str
    reports_dir: str
    prediction_log_dir: str = ""
    """Parquet log of served predictions (empty: no served traffic to monitor)."""

    @property
    def landing(self) -> Path:
        path = Path(self.landing_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def reports(self) -> Path:
        path = Path(self.reports_dir)
        path.mkdir(parents=True, exist_ok=True)
        return path

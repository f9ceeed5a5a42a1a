"""Dagster resources: thin, configurable handles on the state that churn_assets.settings locates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml
from dagster_dbt import DbtCliInvocation, DbtCliResource

from churn_assets.settings import DBT_PROJECT_DIR, write_if_changed

# The output of the installation's dbt profile that compiles analyses: an in-memory DuckDB (they read no table).
DBT_ANALYSIS_TARGET = "analysis"


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


class Dbt(dg.ConfigurableResource):
    """dbt for one installation: `dbt_executable` on the project with the installation's own profile.

    The profile is the project's (dbt_project/profiles.yml) with this warehouse as the `dev` output's path and
    an in-memory output for compiling analyses, written under the installation before each call: a dbt run
    gets the warehouse from this file, not from an environment variable set around the call.
    """

    project_dir: str
    profiles_dir: str
    warehouse_path: str
    target: str
    dbt_executable: str

    def profile(self) -> str:
        project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
        profiles = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
        outputs = profiles[project["profile"]]["outputs"]
        outputs["dev"]["path"] = self.warehouse_path
        outputs[DBT_ANALYSIS_TARGET] = {**outputs["dev"], "path": ":memory:", "threads": 1}
        return yaml.safe_dump(profiles, sort_keys=False)

    def cli(self, args: list[str], *, target: str | None = None, **kwargs: Any) -> DbtCliInvocation:
        """`DbtCliResource.cli` (same keyword arguments: context, raise_on_error, ...) on this installation."""
        write_if_changed(Path(self.profiles_dir) / "profiles.yml", self.profile())
        resource = DbtCliResource(
            project_dir=self.project_dir,
            profiles_dir=self.profiles_dir,
            target=target or self.target,
            dbt_executable=self.dbt_executable,
        )
        return resource.cli(args, **kwargs)

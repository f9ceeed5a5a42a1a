"""SQL that runs outside the warehouse (serving, drift on served traffic): dbt's own compilation of the
staging and feature macros over a relation named `request_rows`."""

from __future__ import annotations

from dagster_dbt import DbtCliResource

from churn_assets.resources import env_override

SERVING_ANALYSIS = "serving_features"
STAGING_ANALYSIS = "staged_request_rows"
REQUEST_RELATION = "request_rows"


def compile_analysis(dbt: DbtCliResource, name: str) -> str:
    """Compile one analysis over `request_rows`; it reads no table, so an in-memory DuckDB suffices."""
    with env_override("CHURN_DUCKDB_PATH", ":memory:"):
        invocation = dbt.cli(["compile", "--select", name, "--quiet"]).wait()
    (compiled,) = invocation.target_path.glob(f"compiled/**/analyses/{name}.sql")
    return compiled.read_text()

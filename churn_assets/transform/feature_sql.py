"""The serving feature SQL: dbt's own compilation of the feature macros over `request_rows`."""

from __future__ import annotations

from dagster_dbt import DbtCliResource

from churn_assets.resources import env_override

SERVING_ANALYSIS = "serving_features"
REQUEST_RELATION = "request_rows"


def compile_serving_features(dbt: DbtCliResource) -> str:
    """Compile the `serving_features` analysis; it reads no table, so an in-memory DuckDB suffices."""
    with env_override("CHURN_DUCKDB_PATH", ":memory:"):
        invocation = dbt.cli(["compile", "--select", SERVING_ANALYSIS, "--quiet"]).wait()
    (compiled,) = invocation.target_path.glob(f"compiled/**/analyses/{SERVING_ANALYSIS}.sql")
    return compiled.read_text()

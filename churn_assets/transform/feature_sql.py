"""SQL that runs outside the warehouse (serving, drift on served traffic): dbt's own compilation of the
staging and feature macros over a relation named `request_rows`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dagster_dbt import DbtCliResource

from churn_assets.resources import env_override

SERVING_ANALYSIS = "serving_features"
STAGING_ANALYSIS = "staged_request_rows"
REQUEST_RELATION = "request_rows"


def compile_analysis(dbt: DbtCliResource, name: str) -> str:
    """Compile one analysis over `request_rows`; it reads no table, so an in-memory DuckDB suffices.

    The result depends only on the parsed project, so it is kept beside the manifest under the manifest's
    hash: a `dbt compile` (seconds) runs once per project version, not once per drift report.
    """
    manifest = Path(dbt.project_dir) / "target" / "manifest.json"
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16] if manifest.exists() else None
    cached = manifest.parent / "compiled_analyses" / f"{name}-{digest}.sql"
    if digest and cached.exists():
        return cached.read_text()
    with env_override("CHURN_DUCKDB_PATH", ":memory:"):
        invocation = dbt.cli(["compile", "--select", name, "--quiet"]).wait()
    (compiled,) = invocation.target_path.glob(f"compiled/**/analyses/{name}.sql")
    sql = compiled.read_text()
    if digest:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}")
        partial.write_text(sql)
        partial.replace(cached)
    return sql

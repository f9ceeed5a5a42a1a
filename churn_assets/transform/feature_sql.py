"""SQL that runs outside the warehouse (serving, drift on served traffic): dbt's own compilation of the
staging and feature macros over a relation named `request_rows` (`churn_assets.ml.pyfunc.REQUEST_RELATION`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from churn_assets.resources import DBT_ANALYSIS_TARGET, Dbt

SERVING_ANALYSIS = "serving_features"
STAGING_ANALYSIS = "staged_request_rows"


def compile_analysis(dbt: Dbt, name: str) -> str:
    """Compile one analysis over `request_rows`; it reads no table, so an in-memory DuckDB suffices.

    The result depends only on the project's SQL and settings (an analysis reads no table), so it is kept
    under the hash of those files: a `dbt compile` (seconds) runs once per version of the project, not once
    per drift report or training run.
    """
    project = Path(dbt.project_dir)
    digest = _project_digest(project)
    cached = project / "target" / "compiled_analyses" / f"{name}-{digest}.sql"
    if cached.exists():
        return cached.read_text()
    invocation = dbt.cli(["compile", "--select", name, "--quiet"], target=DBT_ANALYSIS_TARGET).wait()
    (compiled,) = invocation.target_path.glob(f"compiled/**/analyses/{name}.sql")
    sql = compiled.read_text()
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f".{cached.name}.{os.getpid()}")
    partial.write_text(sql)
    partial.replace(cached)
    return sql


def _project_digest(project: Path) -> str:
    """sha256 of what compilation reads: dbt_project.yml, profiles.yml, macros, analyses, models."""
    digest = hashlib.sha256()
    files = [project / "dbt_project.yml", project / "profiles.yml"]
    for folder in ("macros", "analyses", "models"):
        files += sorted((project / folder).rglob("*"))
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(project)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]

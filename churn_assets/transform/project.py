"""The dbt project as Dagster sees it, with its manifest prepared wherever the code is loaded.

``prepare_if_dev`` only acts under ``dagster dev``; tests, CI and ``make run`` load the code without it,
so a missing manifest is also prepared here (``make`` targets re-prepare it on every call, keeping it
fresh after model edits). This is dagster-dbt's documented pattern: ``@dbt_assets`` needs the manifest
when the definitions are imported. Parsing reads no warehouse, so the project names no target: runs get
theirs from ``Settings.dbt_target`` (``DbtCliResource`` in ``churn_assets.definitions``).
"""

from __future__ import annotations

from dagster_dbt import DbtProject

from churn_assets.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
if not dbt_project.manifest_path.exists():
    dbt_project.preparer.prepare(dbt_project)

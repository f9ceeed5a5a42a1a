"""The code location loads from workspace.yaml and lists every asset and check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from churn_assets.definitions import build_definitions
from churn_assets.jobs import INGEST_JOB, MAIN_JOB
from churn_assets.settings import REPO_ROOT, Settings

EXPECTED_ASSETS = {
    "raw/landed_files",
    "raw/customers",
    "raw/rejected_rows",
    "monitoring/batch_drift",
    "monitoring/served_drift",
    "ml/training_snapshot",
    "ml/registered_model",
    "ml/promotion_decision",
    "ml/champion_model",
    "staging/stg_customers",
    "marts/customer_features",
    "marts/training_set",
    "data_profile",
}


def test_workspace_yaml_loads(tmp_path: Path) -> None:
    env = {**os.environ, **Settings(home=tmp_path).subprocess_env()}
    Settings(home=tmp_path).ensure_dirs()
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "churn_assets" in done.stdout + done.stderr


def test_definitions_list_every_asset_check_job_and_sensor(tmp_path: Path) -> None:
    defs = build_definitions(Settings(home=tmp_path))
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys >= EXPECTED_ASSETS
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {("raw/customers", "rows_accounted_for"), ("raw/landed_files", "file_accepted")} <= checks
    assert ("staging/stg_customers", "unique_stg_customers_customer_id") in checks
    assert any(asset == "marts/training_set" and "label_rate_within" in name for asset, name in checks)
    # lineage: landing → raw → staging → features → training set, profile off staging
    assert graph.get(dg.AssetKey(["staging", "stg_customers"])).parent_keys == {
        dg.AssetKey(["raw", "customers"])
    }
    assert (
        dg.AssetKey(["marts", "customer_features"])
        in graph.get(dg.AssetKey(["marts", "training_set"])).parent_keys
    )
    assert graph.get(dg.AssetKey("data_profile")).parent_keys == {dg.AssetKey(["staging", "stg_customers"])}
    assert {MAIN_JOB, INGEST_JOB} <= {j.name for j in defs.resolve_all_job_defs()}
    for name in ("landing_sensor", "data_automation", "training_automation", "run_failure_alert"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING, name

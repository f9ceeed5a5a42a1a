"""Monitoring assets: the data profile of the cleaned table and the drift report against the champion."""

import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import mlflow
import pandas as pd
from dagster_dbt import DbtCliResource, get_asset_key_for_model

from churn_assets.ml.pyfunc import RAW_COLUMNS
from churn_assets.monitoring.drift import DriftResult, build_drift_report
from churn_assets.monitoring.profile import build_data_profile
from churn_assets.resources import StateDirs, Warehouse
from churn_assets.training.registry import CHAMPION_ALIAS, DRIFT_REFERENCE_ARTIFACT
from churn_assets.training.tracking import MlflowTracking
from churn_assets.transform.assets import churn_dbt_models
from churn_assets.transform.feature_sql import STAGING_ANALYSIS, compile_analysis

STG_CUSTOMERS = get_asset_key_for_model([churn_dbt_models], "stg_customers")
DRIFT_REPORT = dg.AssetKey(["monitoring", "drift_report"])
LINEAGE = "batch_id, source_file, ingested_at"


class DriftConfig(dg.Config):
    drift_share_threshold: float = 0.1
    """Share of monitored columns (20) that may drift before the check warns: 0.1 = two columns."""
    served_window_rows: int = 5000
    """How many of the most recently served records the served-traffic report compares."""


@dg.asset(
    deps=[STG_CUSTOMERS],
    group_name="monitoring",
    kinds={"evidently", "html"},
    pool="duckdb",
    automation_condition=dg.AutomationCondition.eager(),
    description="Types, missing values, target balance, distributions and churn associations of stg_customers.",
)
def data_profile(
    context: dg.AssetExecutionContext, warehouse: Warehouse, state: StateDirs
) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as conn:
        frame = conn.execute("select * from staging.stg_customers").df()
    profile = build_data_profile(frame, state.reports / "data_profile")
    context.log.info(f"data profile written to {profile.html_path}")
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(profile.markdown),
            "report_html": dg.MetadataValue.path(str(profile.html_path)),
            "churn_associations_html": dg.MetadataValue.path(str(profile.association_html_path)),
            "report_json": dg.MetadataValue.path(str(profile.json_path)),
            "dagster/row_count": profile.n_rows,
            "churn_rate": profile.target_rate,
        }
    )


def champion_reference(tracking: MlflowTracking) -> tuple[str, pd.DataFrame]:
    """The champion's version and the staged rows it was trained on (logged with its run at registration)."""
    client = tracking.client()
    version = client.get_model_version_by_alias(tracking.registered_model_name, CHAMPION_ALIAS)
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=DRIFT_REFERENCE_ARTIFACT, dst_path=tmp
        )
        return version.version, pd.read_parquet(path)


def served_records(log_dir: str, staging_sql: str, window_rows: int) -> pd.DataFrame | None:
    """The newest served records from the prediction log, staged by dbt's own staging SQL."""
    files = sorted(Path(log_dir).glob("date=*/part-*.parquet")) if log_dir else []
    if not files:
        return None
    fields = ", ".join(f"record::json->>'{c}' as {c}" for c in RAW_COLUMNS)
    with duckdb.connect() as conn:
        newest = conn.execute(
            "select record from read_parquet(?, union_by_name = true) order by served_at desc limit ?",
            [[str(f) for f in files], window_rows],
        ).df()
        conn.register("served_log", newest)
        conn.execute(f"create view request_rows as select {fields} from served_log")
        return conn.execute(staging_sql).df()


@dg.asset(
    key=DRIFT_REPORT,
    deps=[STG_CUSTOMERS, dg.AssetKey(["ml", "champion_model"])],
    check_specs=[
        dg.AssetCheckSpec(
            "drift_share_below_threshold",
            asset=DRIFT_REPORT,
            description="Share of drifted columns in the newest batch stays below the configured threshold.",
        ),
        dg.AssetCheckSpec(
            "served_drift_share_below_threshold",
            asset=DRIFT_REPORT,
            description="Share of drifted columns in recently served traffic stays below the threshold.",
        ),
    ],
    group_name="monitoring",
    kinds={"evidently", "html"},
    pool="duckdb",
    automation_condition=dg.AutomationCondition.eager(),
    description="Evidently data drift against the champion's training data: the newest ingested batch, "
    "and the traffic the prediction server logged.",
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    warehouse: Warehouse,
    state: StateDirs,
    mlflow_tracking: MlflowTracking,
    dbt: DbtCliResource,
):
    champion_version, reference = champion_reference(mlflow_tracking)
    reference = reference.drop(columns=["churn"])
    with warehouse.connect(read_only=True) as conn:
        (batch_id, source_file) = conn.execute(
            "select batch_id, source_file from raw.landed_files where status = 'loaded' "
            "order by ingested_at desc, source_file desc limit 1"
        ).fetchone()
        current = conn.execute(
            f"select * exclude ({LINEAGE}) from staging.stg_customers where batch_id = ?", [batch_id]
        ).df()
    result = build_drift_report(
        reference,
        current.drop(columns=["churn"]),
        state.reports / "drift",
        drift_share_threshold=config.drift_share_threshold,
    )
    served = served_records(
        state.prediction_log_dir, compile_analysis(dbt, STAGING_ANALYSIS), config.served_window_rows
    )
    served_result = (
        None
        if served is None
        else build_drift_report(
            reference,
            served,
            state.reports / "drift",
            drift_share_threshold=config.drift_share_threshold,
            name="served_drift_report",
        )
    )
    context.log.info(
        f"drift of {source_file} vs champion v{champion_version}: share {result.drift_share:.3f}"
    )
    yield dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(result.markdown),
            "drift_share": result.drift_share,
            "n_drifted_columns": result.n_drifted,
            "drifted_columns": dg.MetadataValue.json(result.drifted_columns),
            "current_batch": source_file,
            "current_rows": result.n_current,
            "reference_rows": result.n_reference,
            "champion_version": int(champion_version),
            "report_html": dg.MetadataValue.path(str(result.html_path)),
            "report_json": dg.MetadataValue.path(str(result.json_path)),
            **_served_metadata(served_result),
        }
    )
    yield dg.AssetCheckResult(
        check_name="drift_share_below_threshold",
        passed=not result.drift_detected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "drift_share": result.drift_share,
            "threshold": config.drift_share_threshold,
            "drifted_columns": dg.MetadataValue.json(result.drifted_columns),
        },
    )
    yield dg.AssetCheckResult(
        check_name="served_drift_share_below_threshold",
        passed=served_result is None or not served_result.drift_detected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=_served_metadata(served_result),
    )


def _served_metadata(result: DriftResult | None) -> dict[str, Any]:
    if result is None:
        return {"served_rows": 0}
    return {
        "served_rows": result.n_current,
        "served_drift_share": result.drift_share,
        "served_drifted_columns": dg.MetadataValue.json(result.drifted_columns),
        "served_report_html": dg.MetadataValue.path(str(result.html_path)),
    }

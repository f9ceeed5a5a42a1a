"""Monitoring assets: the data profile of the cleaned table, and drift against the champion's training data —
for every landed batch (one partition each, before any training on it) and for served traffic (hourly)."""

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import mlflow
import pandas as pd
from dagster_dbt import get_asset_key_for_model

from churn_assets.automation import BATCH_FRESHNESS
from churn_assets.ingest.assets import RAW_CUSTOMERS
from churn_assets.ingest.store import BATCH_ID, CUSTOMERS_TABLE
from churn_assets.ml.champion import CHAMPION_ALIAS, DRIFT_REFERENCE_ARTIFACT, version_by_alias
from churn_assets.ml.pyfunc import RAW_COLUMNS, REQUEST_RELATION
from churn_assets.monitoring.drift import DriftResult, build_drift_report
from churn_assets.monitoring.profile import build_data_profile
from churn_assets.monitoring.verdicts import Kind, record_verdict
from churn_assets.partitions import BATCHES
from churn_assets.resources import Dbt, StateDirs, Warehouse
from churn_assets.training.tracking import MlflowTracking
from churn_assets.transform.assets import churn_dbt_models
from churn_assets.transform.feature_sql import STAGING_ANALYSIS, compile_analysis
from churn_assets.transform.relations import STG_CUSTOMERS_TABLE

STG_CUSTOMERS = get_asset_key_for_model([churn_dbt_models], "stg_customers")
BATCH_DRIFT = dg.AssetKey(["monitoring", "batch_drift"])
SERVED_DRIFT = dg.AssetKey(["monitoring", "served_drift"])
SERVED_DRIFT_CRON = "0 * * * *"
"""Served traffic is compared with the champion's reference every hour."""


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
        frame = conn.execute(f"select * from {STG_CUSTOMERS_TABLE}").df()
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


def champion_reference(tracking: MlflowTracking) -> tuple[str, pd.DataFrame] | None:
    """The champion's version and the staged rows it was trained on (logged with its run at registration)."""
    client = tracking.client()
    version = version_by_alias(client, tracking.registered_model_name, CHAMPION_ALIAS)
    if version is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=DRIFT_REFERENCE_ARTIFACT, dst_path=tmp
        )
        return version.version, pd.read_parquet(path).drop(columns=["churn"])


def staged(conn: duckdb.DuckDBPyConnection, rows_sql: str, staging_sql: str, params: list) -> pd.DataFrame:
    """Raw Telco records (``rows_sql``: the data set's columns, as text or typed) staged by dbt's own SQL."""
    rows = conn.execute(rows_sql, params).to_arrow_table()
    conn.register(REQUEST_RELATION, rows)
    try:
        return conn.execute(staging_sql).df()
    finally:
        conn.unregister(REQUEST_RELATION)


def served_records(log_dir: str, staging_sql: str, window_rows: int) -> pd.DataFrame | None:
    """The newest served records from the prediction log (what was answered, not shadow scores), staged."""
    files = sorted(Path(log_dir).glob("date=*/part-*.parquet")) if log_dir else []
    if not files:
        return None
    fields = ", ".join(f"record::json->>'{c}' as \"{c}\"" for c in RAW_COLUMNS)
    with duckdb.connect() as conn:
        log = conn.execute(
            "select * from read_parquet(?, union_by_name = true) order by served_at desc limit 0",
            [[str(f) for f in files]],
        ).df()
        answered = (
            "where shadow is not true" if "shadow" in log.columns else ""
        )  # rows logged before shadow existed have NULL
        rows = (
            f"select {fields} from read_parquet(?, union_by_name = true) {answered} "
            "order by served_at desc limit ?"
        )
        return staged(conn, rows, staging_sql, [[str(f) for f in files], window_rows])


def _drift_check(name: str, result: DriftResult | None, threshold: float, note: str) -> dg.AssetCheckResult:
    metadata: dict[str, float | str | dg.MetadataValue] = {"threshold": threshold, "note": note}
    if result is not None:
        metadata |= {
            "drift_share": result.drift_share,
            "drifted_columns": dg.MetadataValue.json(result.drifted_columns),
            "rows": result.n_current,
        }
    return dg.AssetCheckResult(
        check_name=name,
        passed=result is None or not result.drift_detected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=metadata,
    )


def _report_metadata(result: DriftResult, champion_version: str) -> dict[str, Any]:
    return {
        "summary": dg.MetadataValue.md(result.markdown),
        "drift_share": result.drift_share,
        "n_drifted_columns": result.n_drifted,
        "drifted_columns": dg.MetadataValue.json(result.drifted_columns),
        "current_rows": result.n_current,
        "reference_rows": result.n_reference,
        "champion_version": int(champion_version),
        "report_html": dg.MetadataValue.path(str(result.html_path)),
        "report_json": dg.MetadataValue.path(str(result.json_path)),
    }


def _evaluate(
    context: dg.AssetExecutionContext,
    kind: Kind,
    subject: str,
    current: pd.DataFrame | None,
    reference: tuple[str, pd.DataFrame] | None,
    config: DriftConfig,
    warehouse: Warehouse,
    state: StateDirs,
):
    """Compare ``current`` with the champion's reference, record the verdict, yield result and check."""
    check = f"{kind}_drift_share_below_threshold"
    if reference is None or current is None or current.empty:
        note = "no champion yet: nothing to compare with" if reference is None else "no rows to compare"
        context.log.info(f"{kind} drift of {subject}: {note}")
        yield dg.MaterializeResult(
            metadata={"note": note, "current_rows": 0 if current is None else len(current)}
        )
        yield _drift_check(check, None, config.drift_share_threshold, note)
        return
    champion_version, reference_rows = reference
    result = build_drift_report(
        reference_rows,
        current,
        state.reports / "drift" / kind,
        drift_share_threshold=config.drift_share_threshold,
        name=f"{kind}_drift_{subject}",
    )
    with warehouse.connect() as conn:
        record_verdict(
            conn, kind, subject, champion_version, result.drift_share, result.drift_detected, result.n_current
        )
    context.log.info(
        f"{kind} drift of {subject} vs champion v{champion_version}: share {result.drift_share:.3f}"
    )
    yield dg.MaterializeResult(metadata=_report_metadata(result, champion_version))
    yield _drift_check(check, result, config.drift_share_threshold, f"against champion v{champion_version}")


@dg.asset(
    key=BATCH_DRIFT,
    deps=[RAW_CUSTOMERS],
    partitions_def=BATCHES,
    check_specs=[
        dg.AssetCheckSpec(
            "batch_drift_share_below_threshold",
            asset=BATCH_DRIFT,
            description="Share of drifted columns in this batch stays below the configured threshold; a "
            "failure is a reason to retrain (see ml/training_snapshot).",
        )
    ],
    group_name="monitoring",
    kinds={"evidently", "html"},
    pool="duckdb",
    automation_condition=dg.AutomationCondition.eager(),
    freshness_policy=BATCH_FRESHNESS,
    description="Evidently data drift of one landed batch against the current champion's training rows, "
    "staged by dbt's own staging SQL; runs as soon as the batch is loaded, before any training on it.",
)
def batch_drift(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    warehouse: Warehouse,
    state: StateDirs,
    mlflow_tracking: MlflowTracking,
    dbt: Dbt,
):
    batch_id = context.partition_key
    staging_sql = compile_analysis(dbt, STAGING_ANALYSIS)
    with warehouse.connect(read_only=True) as conn:
        current = staged(
            conn, f"select * from {CUSTOMERS_TABLE} where {BATCH_ID} = ?", staging_sql, [batch_id]
        )
    yield from _evaluate(
        context, "batch", batch_id, current, champion_reference(mlflow_tracking), config, warehouse, state
    )


@dg.asset(
    key=SERVED_DRIFT,
    check_specs=[
        dg.AssetCheckSpec(
            "served_drift_share_below_threshold",
            asset=SERVED_DRIFT,
            description="Share of drifted columns in recently served traffic stays below the threshold.",
        )
    ],
    group_name="monitoring",
    kinds={"evidently", "html"},
    pool="duckdb",
    automation_condition=(
        # dagster types `since_last_handled` for asset-or-check conditions only, and `cron_tick_passed`
        # (a free key type) resolves to asset conditions; the combination is valid at runtime.
        dg.AutomationCondition.cron_tick_passed(SERVED_DRIFT_CRON).since_last_handled()  # type: ignore[misc]
        & ~dg.AutomationCondition.in_progress()
    ).with_label("hourly"),
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=6), warn_window=timedelta(hours=2)
    ),
    description="Evidently data drift of the newest served requests (the prediction server's log) against "
    "the current champion's training rows, every hour.",
)
def served_drift(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    warehouse: Warehouse,
    state: StateDirs,
    mlflow_tracking: MlflowTracking,
    dbt: Dbt,
):
    current = served_records(
        state.prediction_log_dir, compile_analysis(dbt, STAGING_ANALYSIS), config.served_window_rows
    )
    yield from _evaluate(
        context, "served", "latest", current, champion_reference(mlflow_tracking), config, warehouse, state
    )

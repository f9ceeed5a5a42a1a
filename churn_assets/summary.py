"""The short report `make run` prints: what landed, what was rejected, where everything is."""

from __future__ import annotations

import duckdb

from churn_assets.headless import HeadlessResult
from churn_assets.ingest.store import LANDED_FILES_TABLE
from churn_assets.settings import Settings
from churn_assets.transform.relations import CUSTOMER_FEATURES_TABLE, STG_CUSTOMERS_TABLE, TRAINING_SET_TABLE


def print_summary(settings: Settings, outcome: HeadlessResult, elapsed_s: float) -> None:
    lines = [
        f"churn-mlops: {len(outcome.batches)} batch run(s) and the main job: "
        f"{'SUCCESS' if outcome.success else 'FAILED'} in {elapsed_s:.1f} s"
    ]
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        files = conn.execute(
            "select status, count(*), coalesce(sum(rows_accepted), 0), coalesce(sum(rows_rejected), 0) "
            f"from {LANDED_FILES_TABLE} group by status order by status"
        ).fetchall()
        for status, n, accepted, rejected in files:
            lines.append(
                f"  files {status:<8} {n:>4}   rows accepted {accepted:>7}   rows rejected {rejected:>5}"
            )
        for table in (STG_CUSTOMERS_TABLE, CUSTOMER_FEATURES_TABLE, TRAINING_SET_TABLE):
            if _exists(conn, table):
                (count,) = conn.execute(f"select count(*) from {table}").fetchall()[0]
                lines.append(f"  {table:<26} {count:>7} rows")
        if _exists(conn, TRAINING_SET_TABLE):
            splits = conn.execute(
                f"select split, count(*), round(avg(churn), 3) from {TRAINING_SET_TABLE} group by 1 order by 1"
            ).fetchall()
            lines.append("  split: " + ", ".join(f"{s} {n} (churn {r})" for s, n, r in splits))
    evaluations = outcome.get_asset_check_evaluations()
    failed = [
        f"{e.asset_check_key.asset_key.to_user_string()}:{e.check_name}" for e in evaluations if not e.passed
    ]
    lines.append(f"  asset checks: {len(evaluations)} run, failed: {failed or 'none'}")
    lines.extend(_model_lines(outcome))
    lines.append(f"  warehouse  {settings.duckdb_path}")
    lines.append(f"  reports    {settings.reports_dir}")
    lines.append(f"  mlflow     {settings.mlflow_tracking_uri}")
    lines.append(f"  dagster    {settings.dagster_home}  (make ui shows this run)")
    print("\n".join(lines))


def _exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    return bool(
        conn.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchall()[0][0]
    )


def _model_lines(outcome: HeadlessResult) -> list[str]:
    meta = {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
        for m in (e.materialization for e in outcome.get_asset_materialization_events())
    }
    observed = {
        o.asset_key.to_user_string(): {k: v.value for k, v in o.metadata.items()}
        for o in outcome.get_asset_observations()
    }
    lines = []
    if not (snapshot := meta.get("ml/training_snapshot")) and (
        looked := observed.get("ml/training_snapshot")
    ):
        lines.append(f"  training   {looked['retraining']}")
    elif snapshot:
        lines.append(f"  training   {snapshot['retraining']}")
    if evaluation := meta.get("ml/evaluation_report"):
        lines.append(
            f"  evaluation: chosen {evaluation['chosen_family']}, test ROC AUC {evaluation['test_roc_auc']:.4f} "
            f"(95% CI {evaluation['test_roc_auc_ci_low']:.3f}-{evaluation['test_roc_auc_ci_high']:.3f}), "
            f"PR AUC {evaluation['test_pr_auc']:.4f}, Brier {evaluation['test_brier']:.4f}"
        )
        lines.append(f"  report     {evaluation['report_html']}")
    if decision := meta.get("ml/promotion_decision"):
        lines.append(f"  decision   v{decision['version']} {decision['outcome']}: {decision['reason']}")
    if champion := meta.get("ml/champion_model"):
        lines.append(
            f"  champion   {champion['model_uri']} = v{champion['version']}, threshold {champion['threshold']:.3f}"
        )
    for key, drift in sorted(meta.items()):
        if key.startswith("monitoring/") and key.endswith("_drift") and "drift_share" in drift:
            lines.append(f"  {key.split('/')[1]:<12}share {drift['drift_share']:.3f}: {drift['report_html']}")
    return lines

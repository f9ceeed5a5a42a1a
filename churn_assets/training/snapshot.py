"""The training snapshot: the exact data a training run sees — materialized only when there is a reason to train.

Training steps get it from the IO manager instead of opening DuckDB, so they hold no warehouse lock while
they tune, and the snapshot names the data version every model was trained on. Each evaluation gathers
the facts (data version vs. what was already trained, new labelled rows, drift verdicts, champion age) and
applies :func:`churn_assets.ml.retraining.decide_retraining`: without a reason the asset records an
observation saying why and does not materialize, so nothing downstream (tuning, registration) runs.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
import duckdb
import polars as pl
from dagster_dbt import get_asset_key_for_model
from mlflow.tracking import MlflowClient

from churn_assets.automation import TRAINING_LOOK
from churn_assets.ingest.store import BATCH_ID, CUSTOMERS_TABLE
from churn_assets.ml.champion import CHAMPION_ALIAS, version_by_alias
from churn_assets.ml.pyfunc import RAW_COLUMNS
from churn_assets.ml.retraining import RetrainingFacts, RetrainingPolicy, decide_retraining
from churn_assets.monitoring.assets import BATCH_DRIFT, SERVED_DRIFT
from churn_assets.monitoring.verdicts import drifted_batches_after, served_drift_after
from churn_assets.resources import Dbt, Warehouse
from churn_assets.training.keys import TRAINING_SNAPSHOT
from churn_assets.training.tracking import MlflowTracking
from churn_assets.transform.assets import churn_dbt_models
from churn_assets.transform.feature_sql import SERVING_ANALYSIS, compile_analysis
from churn_assets.transform.project import dbt_project
from churn_assets.transform.relations import STG_CUSTOMERS_TABLE, TRAINING_SET_TABLE

TRAINING_SET = get_asset_key_for_model([churn_dbt_models], "training_set")
FEATURES_MODEL = "model.churn.customer_features"
TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"


class RetrainingConfig(dg.Config):
    force: bool = False
    """Train whatever the facts say (a manual run, `make run`); automation never sets it."""
    min_new_rows_share: float = RetrainingPolicy.min_new_rows_share
    """New labelled rows, as a share of the champion's training rows, that warrant training on their own."""
    max_champion_age_days: float = RetrainingPolicy.max_champion_age_days


@dataclass(frozen=True)
class TrainingSnapshot:
    features: pl.DataFrame  # marts.training_set: customer_id, model inputs, churn, split
    raw_records: pl.DataFrame  # the landed record behind each customer, as text, for registry round trips
    staged: pl.DataFrame  # stg_customers analysis columns, the drift reference
    feature_columns: list[str]
    feature_sql: str
    data_version: str
    data_cutoff: str  # ingestion time of the newest row in the snapshot (UTC, TIMESTAMP format)


def model_input_columns(manifest: dict) -> list[str]:
    """Columns of customer_features marked `meta.model_input` in dbt: the model's input, in dbt's order."""
    columns = manifest["nodes"][FEATURES_MODEL]["columns"]
    return [name for name, column in columns.items() if column.get("meta", {}).get("model_input")]


def _latest_version_data(client: MlflowClient, name: str) -> str | None:
    versions = client.search_model_versions(
        f"name = '{name}'", max_results=1, order_by=["creation_timestamp DESC"]
    )
    return versions[0].tags.get("data_version") if versions else None


def retraining_facts(
    conn: duckdb.DuckDBPyConnection, client: MlflowClient, name: str, data_version: str, forced: bool
) -> RetrainingFacts:
    champion = version_by_alias(client, name, CHAMPION_ALIAS)
    if champion is None:
        return RetrainingFacts(data_version, frozenset(), has_champion=False, forced=forced)
    tags = champion.tags
    cutoff = datetime.strptime(tags["data_cutoff"], TIMESTAMP) if "data_cutoff" in tags else None
    (new_rows,) = conn.execute(
        f"select count(*) from {STG_CUSTOMERS_TABLE} "
        "where churn is not null and (cast(? as timestamp) is null or ingested_at > cast(? as timestamp))",
        [cutoff, cutoff],
    ).fetchall()[0]
    trained_at = datetime.fromtimestamp(champion.creation_timestamp / 1000, UTC)
    tried = {v for v in (tags.get("data_version"), _latest_version_data(client, name)) if v is not None}
    return RetrainingFacts(
        data_version=data_version,
        tried_data_versions=frozenset(tried),
        has_champion=True,
        champion_training_rows=int(tags.get("training_rows", 0)),
        new_labelled_rows=int(new_rows),
        drifted_batches=tuple(drifted_batches_after(conn, cutoff)),
        served_drift=served_drift_after(conn, trained_at.replace(tzinfo=None)),
        champion_age_days=(datetime.now(UTC) - trained_at).total_seconds() / 86400,
        forced=forced,
    )


@dg.asset(
    key=TRAINING_SNAPSHOT,
    deps=[TRAINING_SET, BATCH_DRIFT, SERVED_DRIFT],
    group_name="ml",
    kinds={"duckdb", "polars"},
    pool="duckdb",
    output_required=False,
    automation_condition=TRAINING_LOOK,
    description="training_set with each customer's raw record, staged columns and the feature SQL. "
    "Looked at when training data, a drift verdict or the weekly tick is new; materialized (so a model is "
    "trained) only for a reason: no champion yet, a batch since the champion's data drifted, new labelled "
    "rows ≥ 10 % of the champion's training rows, served traffic drifted with new labels, or a champion "
    "older than 7 days with new labels — never on data already trained on, never while training runs.",
)
def training_snapshot(
    context: dg.AssetExecutionContext,
    config: RetrainingConfig,
    warehouse: Warehouse,
    dbt: Dbt,
    mlflow_tracking: MlflowTracking,
):
    raw_columns = ", ".join(f'r."{c}"' for c in RAW_COLUMNS)
    policy = RetrainingPolicy(config.min_new_rows_share, config.max_champion_age_days)
    with warehouse.connect(read_only=True) as conn:
        data_version = _data_version(conn)
        (cutoff,) = conn.execute(f"select max(ingested_at) from {STG_CUSTOMERS_TABLE}").fetchall()[0]
        facts = retraining_facts(
            conn, mlflow_tracking.client(), mlflow_tracking.registered_model_name, data_version, config.force
        )
        decision = decide_retraining(facts, policy)
        context.log.info(decision.summary)
        if not decision.train:
            context.log_event(
                dg.AssetObservation(
                    asset_key=TRAINING_SNAPSHOT,
                    metadata={"retraining": decision.summary, **_facts_metadata(facts)},
                )
            )
            return
        features = conn.sql(f"select * from {TRAINING_SET_TABLE} order by customer_id").pl()
        raw_records = conn.sql(
            f"""
            select {raw_columns}
            from {CUSTOMERS_TABLE} r
            join {STG_CUSTOMERS_TABLE} s on r.{BATCH_ID} = s.batch_id and trim(r.customerID) = s.customer_id
            order by s.customer_id
            """
        ).pl()
        staged = conn.sql(
            f"select * exclude (batch_id, source_file, ingested_at) from {STG_CUSTOMERS_TABLE} order by customer_id"
        ).pl()
    manifest = json.loads(dbt_project.manifest_path.read_text())
    snapshot = TrainingSnapshot(
        features=features,
        raw_records=raw_records,
        staged=staged,
        feature_columns=model_input_columns(manifest),
        feature_sql=compile_analysis(dbt, SERVING_ANALYSIS),
        data_version=data_version,
        data_cutoff=cutoff.strftime(TIMESTAMP),
    )
    counts = dict(features.group_by("split").len().iter_rows())
    context.log.info(f"training snapshot {data_version}: {counts}, {len(snapshot.feature_columns)} features")
    yield dg.Output(
        snapshot,
        data_version=dg.DataVersion(data_version),
        metadata={
            "retraining": decision.summary,
            **_facts_metadata(facts),
            "data_cutoff": snapshot.data_cutoff,
            "dagster/row_count": features.height,
            "rows_train": counts.get("train", 0),
            "rows_validation": counts.get("validation", 0),
            "rows_test": counts.get("test", 0),
            "feature_columns": dg.MetadataValue.json(snapshot.feature_columns),
        },
    )


def _facts_metadata(facts: RetrainingFacts) -> dict:
    return {
        "data_version": facts.data_version,
        "new_labelled_rows": facts.new_labelled_rows,
        "champion_training_rows": facts.champion_training_rows,
        "drifted_batches": dg.MetadataValue.json(list(facts.drifted_batches)),
        "served_drift": facts.served_drift,
        "champion_age_days": round(facts.champion_age_days, 3),
    }


def _data_version(conn: duckdb.DuckDBPyConnection) -> str:
    """md5 of the training set's rows as text, joined by '|' in customer_id order: the value
    `md5(string_agg(t::varchar, '|' order by customer_id))` gives, computed streamed (DuckDB would build the
    whole table as one string: gigabytes at 10M rows)."""
    digest, separator = hashlib.md5(), b""  # nosec B324 # a content fingerprint (the md5 DuckDB gives), not a security use
    cursor = conn.execute(f"select t::varchar from {TRAINING_SET_TABLE} t order by customer_id")
    while rows := cursor.fetchmany(100_000):
        for (text,) in rows:
            digest.update(separator + text.encode())
            separator = b"|"
    return digest.hexdigest()

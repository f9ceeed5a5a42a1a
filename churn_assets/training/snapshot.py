"""The training snapshot: the exact data a training run sees, read once from the warehouse.

Training steps get it from the IO manager instead of opening DuckDB, so they hold no warehouse lock
while they tune, and the snapshot names the data version every model was trained on.
"""

import json
from dataclasses import dataclass

import dagster as dg
import polars as pl
from dagster_dbt import DbtCliResource, get_asset_key_for_model

from churn_assets.ml.pyfunc import RAW_COLUMNS
from churn_assets.resources import Warehouse
from churn_assets.transform.assets import churn_dbt_models
from churn_assets.transform.feature_sql import SERVING_ANALYSIS, compile_analysis
from churn_assets.transform.project import dbt_project

TRAINING_SET = get_asset_key_for_model([churn_dbt_models], "training_set")
FEATURES_MODEL = "model.churn.customer_features"


@dataclass(frozen=True)
class TrainingSnapshot:
    features: pl.DataFrame  # marts.training_set: customer_id, model inputs, churn, split
    raw_records: pl.DataFrame  # the landed record behind each customer, as text, for registry round trips
    staged: pl.DataFrame  # stg_customers analysis columns, the drift reference
    feature_columns: list[str]
    feature_sql: str
    data_version: str


def model_input_columns(manifest: dict) -> list[str]:
    """Columns of customer_features marked `meta.model_input` in dbt: the model's input, in dbt's order."""
    columns = manifest["nodes"][FEATURES_MODEL]["columns"]
    return [name for name, column in columns.items() if column.get("meta", {}).get("model_input")]


@dg.asset(
    key=["ml", "training_snapshot"],
    deps=[TRAINING_SET],
    group_name="ml",
    kinds={"duckdb", "polars"},
    pool="duckdb",
    automation_condition=dg.AutomationCondition.eager(),
    description="training_set, the raw record and staged columns of each customer, and the feature SQL.",
)
def training_snapshot(
    context: dg.AssetExecutionContext, warehouse: Warehouse, dbt: DbtCliResource
) -> dg.Output[TrainingSnapshot]:
    raw_columns = ", ".join(f'r."{c}"' for c in RAW_COLUMNS)
    with warehouse.connect(read_only=True) as conn:
        features = conn.sql("select * from marts.training_set order by customer_id").pl()
        raw_records = conn.sql(
            f"""
            select {raw_columns}
            from raw.customers r
            join staging.stg_customers s on r._batch_id = s.batch_id and trim(r.customerID) = s.customer_id
            order by s.customer_id
            """
        ).pl()
        staged = conn.sql(
            "select * exclude (batch_id, source_file, ingested_at) from staging.stg_customers order by customer_id"
        ).pl()
        (data_version,) = conn.execute(
            "select md5(string_agg(t::varchar, '|' order by customer_id)) from marts.training_set t"
        ).fetchone()
    manifest = json.loads(dbt_project.manifest_path.read_text())
    snapshot = TrainingSnapshot(
        features=features,
        raw_records=raw_records,
        staged=staged,
        feature_columns=model_input_columns(manifest),
        feature_sql=compile_analysis(dbt, SERVING_ANALYSIS),
        data_version=data_version,
    )
    counts = dict(features.group_by("split").len().iter_rows())
    context.log.info(f"training snapshot {data_version}: {counts}, {len(snapshot.feature_columns)} features")
    return dg.Output(
        snapshot,
        data_version=dg.DataVersion(data_version),
        metadata={
            "data_version": data_version,
            "dagster/row_count": features.height,
            "rows_train": counts.get("train", 0),
            "rows_validation": counts.get("validation", 0),
            "rows_test": counts.get("test", 0),
            "feature_columns": dg.MetadataValue.json(snapshot.feature_columns),
        },
    )

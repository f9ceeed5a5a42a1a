"""Jobs: one landed batch with the tables it changes (what the landing sensor runs), and the rest of the graph
(what `make run` runs after loading every landed batch)."""

import dagster as dg

from churn_assets.ingest.assets import raw_batch
from churn_assets.monitoring.assets import batch_drift, data_profile
from churn_assets.partitions import BATCHES
from churn_assets.transform.assets import churn_dbt_models

MAIN_JOB = "churn_main"
INGEST_JOB = "ingest_batch"

# One run per landed file, so the loop pays one run start before training, not one per stage. A file that
# adds no customers (refused, empty, duplicate) materializes raw/landed_files only: the rest is skipped.
BATCH_ASSETS = dg.AssetSelection.assets(raw_batch, batch_drift, churn_dbt_models, data_profile)

ingest_batch_job = dg.define_asset_job(
    INGEST_JOB,
    selection=BATCH_ASSETS,
    partitions_def=BATCHES,
    description="One landed file → raw/landed_files and the raw tables, the batch's drift report against "
    "the champion, the dbt tables and the data profile (all skipped when the file added no customers).",
)
main_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all() - BATCH_ASSETS,
    description="Served-traffic drift, and training when there is a reason (or when forced) through to the "
    "promotion decision and the champion.",
)

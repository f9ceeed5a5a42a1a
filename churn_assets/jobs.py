"""Jobs: one landed batch (what the landing sensor runs), and the unpartitioned rest of the graph (what
`make run` runs after loading every landed batch)."""

import dagster as dg

from churn_assets.ingest.assets import raw_batch
from churn_assets.monitoring.assets import batch_drift
from churn_assets.partitions import BATCHES

MAIN_JOB = "churn_main"
INGEST_JOB = "ingest_batch"

BATCH_ASSETS = dg.AssetSelection.assets(raw_batch, batch_drift)

ingest_batch_job = dg.define_asset_job(
    INGEST_JOB,
    selection=BATCH_ASSETS,
    partitions_def=BATCHES,
    description="One landed file → raw/landed_files, raw tables, and the batch's drift report against the "
    "champion (skipped when the file added no customers).",
)
main_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all() - BATCH_ASSETS,
    description="dbt tables, data profile, served-traffic drift, and training when there is a reason (or "
    "when forced) through to the promotion decision and champion.",
)

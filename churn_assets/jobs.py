"""Jobs: the whole graph (what `make run` executes) and the ingestion slice the landing sensor starts."""

import dagster as dg

from churn_assets.monitoring.assets import data_profile

MAIN_JOB = "churn_main"
INGEST_JOB = "ingest_and_transform"

main_job = dg.define_asset_job(MAIN_JOB, selection=dg.AssetSelection.all(), description="The whole graph.")
ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=dg.AssetSelection.groups("ingestion", "transform") | dg.AssetSelection.assets(data_profile),
    description="Landed batches → raw tables → dbt models and tests → data profile.",
)

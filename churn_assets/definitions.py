"""The one Definitions of churn-mlops: assets, checks, jobs, sensors and resources."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from churn_assets.ingest.assets import raw_customers
from churn_assets.monitoring.assets import data_profile
from churn_assets.resources import StateDirs, Warehouse
from churn_assets.sensors import build_landing_sensor
from churn_assets.settings import Settings, get_settings
from churn_assets.transform.assets import churn_dbt_models
from churn_assets.transform.project import dbt_project

MAIN_JOB = "churn_main"
INGEST_JOB = "ingest_and_transform"


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to one installation (``settings``); tests build one per temporary home."""
    main_job = dg.define_asset_job(MAIN_JOB, selection=dg.AssetSelection.all(), description="The whole graph.")
    ingest_job = dg.define_asset_job(
        INGEST_JOB,
        selection=dg.AssetSelection.groups("ingestion", "transform")
        | dg.AssetSelection.assets(data_profile),
        description="Landed batches → raw tables → dbt models and tests → data profile.",
    )
    return dg.Definitions(
        assets=[raw_customers, churn_dbt_models, data_profile],
        jobs=[main_job, ingest_job],
        sensors=[build_landing_sensor(ingest_job)],
        resources={
            "warehouse": Warehouse(path=str(settings.duckdb_path)),
            "state": StateDirs(landing_dir=str(settings.landing_dir), reports_dir=str(settings.reports_dir)),
            "dbt": DbtCliResource(project_dir=dbt_project, target=settings.dbt_target),
        },
    )


defs = build_definitions(get_settings())

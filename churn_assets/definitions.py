"""The one Definitions of churn-mlops: assets, checks, jobs, sensors (landing, automation, alerts), resources."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg

from churn_assets.alerting.sensors import ALERT_SENSORS
from churn_assets.automation import AUTOMATION_SENSORS
from churn_assets.ingest.assets import raw_batch
from churn_assets.jobs import ingest_batch_job, main_job
from churn_assets.monitoring.assets import batch_drift, data_profile, served_drift
from churn_assets.resources import Dbt, StateDirs, Warehouse
from churn_assets.sensors import landing_sensor
from churn_assets.settings import Settings, get_settings
from churn_assets.training.candidates import model_candidates
from churn_assets.training.evaluation import evaluation_report
from churn_assets.training.registry import champion_model, promotion_decision, registered_model
from churn_assets.training.snapshot import training_snapshot
from churn_assets.training.tracking import MlflowTracking
from churn_assets.transform.assets import churn_dbt_models
from churn_assets.transform.project import dbt_project

# dbt installed beside the Python that runs Dagster, whatever PATH says.
DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")


def build_definitions(settings: Settings) -> dg.Definitions:
    """Definitions wired to one installation (``settings``); tests build one per temporary home."""
    return dg.Definitions(
        assets=[
            raw_batch,
            churn_dbt_models,
            data_profile,
            batch_drift,
            served_drift,
            training_snapshot,
            model_candidates,
            evaluation_report,
            registered_model,
            promotion_decision,
            champion_model,
        ],
        jobs=[main_job, ingest_batch_job],
        sensors=[landing_sensor, *AUTOMATION_SENSORS, *ALERT_SENSORS],
        # Steps run inside the run's process: a run pays one process start, not one per step.
        executor=dg.in_process_executor,
        resources={
            "warehouse": Warehouse(path=str(settings.duckdb_path)),
            "state": StateDirs(
                landing_dir=str(settings.landing_dir),
                reports_dir=str(settings.reports_dir),
                prediction_log_dir=str(settings.prediction_log_dir),
            ),
            "dbt": Dbt(
                project_dir=str(dbt_project.project_dir),
                profiles_dir=str(settings.dbt_profiles_dir),
                warehouse_path=str(settings.duckdb_path),
                target=settings.dbt_target,
                dbt_executable=DBT_EXECUTABLE,
            ),
            "mlflow_tracking": MlflowTracking(
                tracking_uri=str(settings.mlflow_tracking_uri),
                artifact_root=str(settings.mlflow_artifacts_dir),
            ),
            # Assets pass values (training snapshot, fitted candidates) through pickles under CHURN_HOME.
            "io_manager": dg.FilesystemIOManager(base_dir=str(settings.home / "assets")),
        },
    )


defs = build_definitions(get_settings())

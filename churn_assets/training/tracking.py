"""MLflow tracking and registry as a Dagster resource: one Dagster run ↔ one parent MLflow run.

dagster-mlflow's `mlflow_tracking` is a legacy op resource whose run is closed by a job hook; hooks do not
run for asset materializations, and its config lives in run config rather than in the environment. This
resource keeps its idea (find the parent run by the `dagster.run_id` tag, so every step of a run, in any
process, logs under the same parent) on a `ConfigurableResource` configured from settings.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from churn_assets.ml.champion import MODEL_NAME

DAGSTER_RUN_TAG = "dagster.run_id"
EXPERIMENT_NAME = "telco-churn"
"""The MLflow experiment every training run logs to (one parent run per Dagster run)."""


class MlflowTracking(dg.ConfigurableResource):
    tracking_uri: str
    artifact_root: str
    experiment_name: str = EXPERIMENT_NAME
    registered_model_name: str = MODEL_NAME

    def client(self) -> MlflowClient:
        mlflow.set_tracking_uri(self.tracking_uri)
        return MlflowClient(self.tracking_uri)

    def experiment_id(self) -> str:
        client = self.client()
        experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(self.experiment_name, artifact_location=self._artifact_location())
        except MlflowException:  # created meanwhile by another step
            experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is None:  # not created meanwhile: the creation itself failed
                raise
            return experiment.experiment_id

    def _artifact_location(self) -> str | None:
        """Where the experiment's artifacts go: the local artifact root for a file or database store; for a
        tracking server (http/https), None: the server's own default, which proxies artifacts
        (`mlflow server --serve-artifacts`), so clients need no access to its storage."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return None
        Path(self.artifact_root).mkdir(parents=True, exist_ok=True)
        return Path(self.artifact_root).as_uri()

    def parent_run_id(self, context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> str:
        """The MLflow run of this Dagster run, created by the first step that asks for it."""
        experiment_id = self.experiment_id()
        client = self.client()
        found = client.search_runs(
            [experiment_id], filter_string=f"tags.`{DAGSTER_RUN_TAG}` = '{context.run.run_id}'", max_results=1
        )
        if found:
            return found[0].info.run_id
        run = client.create_run(
            experiment_id,
            run_name=f"{context.run.job_name}-{context.run.run_id[:8]}",
            tags={DAGSTER_RUN_TAG: context.run.run_id, "dagster.job": context.run.job_name},
        )
        return run.info.run_id

    @contextmanager
    def child_run(
        self, context: dg.AssetExecutionContext, name: str, tags: dict[str, str] | None = None
    ) -> Iterator[Run]:
        """A run nested under this Dagster run's parent run; it is the active MLflow run inside the block."""
        parent = self.parent_run_id(context)
        mlflow.set_tracking_uri(self.tracking_uri)
        # Nested runs (this one, and the trials inside it) land in the active experiment.
        mlflow.set_experiment(experiment_id=self.experiment_id())
        with (
            mlflow.start_run(run_id=parent),
            mlflow.start_run(run_name=name, nested=True, tags=tags) as run,
        ):
            yield run

    def run_url(self, run_id: str) -> str:
        """Where the run is: on the tracking server itself, else in `make mlflow-ui`."""
        base = (
            self.tracking_uri
            if self.tracking_uri.startswith(("http://", "https://"))
            else "http://127.0.0.1:5000"
        )
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id()}/runs/{run_id}"

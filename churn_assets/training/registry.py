"""Registration and promotion: a version is registered as `challenger`; `champion` moves only past the gate.

The gate is four blocking asset checks on `registered_model`. When one fails, Dagster does not run
`champion_model` in that run, so the alias stays where it was.
"""

import contextlib
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl
from mlflow.exceptions import MlflowException
from sklearn.metrics import roc_auc_score

from churn_assets.ml.gate import GatePolicy, GateResult, floor_results, regression_result, reproduction_result
from churn_assets.ml.matrix import labels, split_frames
from churn_assets.training.evaluation import Evaluation
from churn_assets.training.snapshot import TrainingSnapshot
from churn_assets.training.tracking import MlflowTracking

CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
REGISTERED_MODEL = dg.AssetKey(["ml", "registered_model"])
DRIFT_REFERENCE_ARTIFACT = "drift_reference/reference.parquet"

GATE_CHECKS = {
    "roc_auc_floor": "Test ROC AUC at or above the floor (0.83 by default).",
    "pr_auc_floor": "Test PR AUC at or above the floor (0.60 by default).",
    "no_regression_vs_champion": "Test ROC AUC no worse than the current champion's on the same split, within tolerance.",
    "reproduces_test_predictions": "The version loaded back from the registry reproduces the test-split probabilities.",
}


class GateConfig(dg.Config):
    min_roc_auc: float = GatePolicy.min_roc_auc
    min_pr_auc: float = GatePolicy.min_pr_auc
    max_auc_regression: float = GatePolicy.max_auc_regression


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: str
    run_id: str
    family: str
    threshold: float
    test_metrics: dict[str, float]
    data_version: str
    gate: list[GateResult]


def test_records(snapshot: TrainingSnapshot) -> tuple[pl.DataFrame, np.ndarray]:
    """Raw records of the test customers, in the order of the test split's feature rows, and their labels."""
    test = split_frames(snapshot.features).test
    raw = snapshot.raw_records.with_columns(customer_id=pl.col("customerID").str.strip_chars())
    ordered = test.select("customer_id").join(raw, on="customer_id", how="left", maintain_order="left")
    return ordered.drop("customer_id"), labels(test)


def champion_probabilities(name: str, records: pl.DataFrame) -> np.ndarray | None:
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION_ALIAS}")
    except MlflowException:
        return None
    return model.predict(records.to_pandas())["churn_probability"].to_numpy()


@dg.asset(
    key=REGISTERED_MODEL,
    ins={
        "training_snapshot": dg.AssetIn(key=["ml", "training_snapshot"]),
        "evaluation_report": dg.AssetIn(key=["ml", "evaluation_report"]),
    },
    check_specs=[
        dg.AssetCheckSpec(name, asset=REGISTERED_MODEL, blocking=True, description=text)
        for name, text in GATE_CHECKS.items()
    ],
    group_name="ml",
    kinds={"mlflow"},
    automation_condition=dg.AutomationCondition.eager(),
    description="The chosen candidate as a new version of the registered model, alias `challenger`, gated.",
)
def registered_model(
    context: dg.AssetExecutionContext,
    config: GateConfig,
    training_snapshot: TrainingSnapshot,
    evaluation_report: Evaluation,
    mlflow_tracking: MlflowTracking,
):
    chosen = evaluation_report.chosen
    name = mlflow_tracking.registered_model_name
    client = mlflow_tracking.client()
    train_ids = split_frames(training_snapshot.features).train.get_column("customer_id")
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / Path(DRIFT_REFERENCE_ARTIFACT).name
        training_snapshot.staged.filter(pl.col("customer_id").is_in(train_ids.implode())).write_parquet(
            reference
        )
        client.log_artifact(chosen.run_id, str(reference), str(Path(DRIFT_REFERENCE_ARTIFACT).parent))

    test_metrics = evaluation_report.test_metrics[chosen.family]
    version = mlflow.register_model(
        chosen.model_uri,
        name,
        tags={
            "family": chosen.family,
            "threshold": f"{chosen.threshold.threshold:.6f}",
            "data_version": training_snapshot.data_version,
            "dagster_run_id": context.run.run_id,
            **{f"test_{k}": f"{v:.6f}" for k, v in test_metrics.items()},
        },
    )
    client.set_registered_model_alias(name, CHALLENGER_ALIAS, version.version)

    records, y_test = test_records(training_snapshot)
    reloaded = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    reloaded_proba = reloaded.predict(records.to_pandas())["churn_probability"].to_numpy()
    champion_proba = champion_probabilities(name, records)
    champion_auc = None if champion_proba is None else float(roc_auc_score(y_test, champion_proba))
    policy = GatePolicy(config.min_roc_auc, config.min_pr_auc, config.max_auc_regression)
    gate = [
        *floor_results(test_metrics, policy),
        regression_result(test_metrics["roc_auc"], champion_auc, policy),
        reproduction_result(evaluation_report.test_proba, reloaded_proba, policy),
    ]
    for result in gate:
        client.set_model_version_tag(
            name, version.version, f"gate.{result.name}", "passed" if result.passed else "failed"
        )
    context.log.info(
        f"registered {name} v{version.version} ({chosen.family}); gate: {[(r.name, r.passed) for r in gate]}"
    )

    yield dg.Output(
        RegisteredVersion(
            name=name,
            version=version.version,
            run_id=chosen.run_id,
            family=chosen.family,
            threshold=chosen.threshold.threshold,
            test_metrics=test_metrics,
            data_version=training_snapshot.data_version,
            gate=gate,
        ),
        metadata={
            "model": f"{name} v{version.version}",
            "family": chosen.family,
            "test_roc_auc": test_metrics["roc_auc"],
            "test_pr_auc": test_metrics["pr_auc"],
            "champion_test_roc_auc": champion_auc if champion_auc is not None else float("nan"),
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(chosen.run_id)),
        },
    )
    for result in gate:
        yield dg.AssetCheckResult(
            check_name=result.name,
            passed=result.passed,
            metadata={"detail": result.detail, "version": version.version},
        )


@dg.asset(
    key=["ml", "champion_model"],
    ins={"registered_model": dg.AssetIn(key=REGISTERED_MODEL)},
    group_name="ml",
    kinds={"mlflow"},
    automation_condition=dg.AutomationCondition.eager()
    & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(days=30), warn_window=timedelta(days=7)
    ),
    description="Moves the registry alias `champion` to the version that passed the gate; serving follows it.",
)
def champion_model(
    context: dg.AssetExecutionContext, registered_model: RegisteredVersion, mlflow_tracking: MlflowTracking
) -> dg.MaterializeResult:
    client = mlflow_tracking.client()
    name, version = registered_model.name, registered_model.version
    previous = None
    with contextlib.suppress(MlflowException):
        previous = client.get_model_version_by_alias(name, CHAMPION_ALIAS).version
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    context.log.info(f"{name}@{CHAMPION_ALIAS}: v{previous} → v{version}")
    metrics = registered_model.test_metrics
    return dg.MaterializeResult(
        metadata={
            "model_uri": f"models:/{name}@{CHAMPION_ALIAS}",
            "version": int(version),
            "previous_version": int(previous) if previous else 0,
            "family": registered_model.family,
            "threshold": registered_model.threshold,
            "test_roc_auc": metrics["roc_auc"],
            "test_pr_auc": metrics["pr_auc"],
            "test_brier": metrics["brier"],
            "data_version": registered_model.data_version,
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(registered_model.run_id)),
        }
    )

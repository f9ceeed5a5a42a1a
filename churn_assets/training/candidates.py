"""Candidate models, one per family: tuned with Optuna, fitted, thresholded and logged to MLflow."""

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import numpy as np
import optuna

import churn_assets
from churn_assets.ml.families import FAMILIES, Family, needs_calibration
from churn_assets.ml.matrix import feature_matrix, labels, split_frames
from churn_assets.ml.metrics import classification_metrics
from churn_assets.ml.pyfunc import ChurnModel, log_churn_model
from churn_assets.ml.threshold import ThresholdChoice, cost_based_threshold
from churn_assets.ml.tuning import TrialRecord, fit_final, tune
from churn_assets.training.config import TrainingConfig
from churn_assets.training.snapshot import TrainingSnapshot
from churn_assets.training.tracking import MlflowTracking

# What a registry consumer must install to load the model; the package's own code ships with it.
SERVING_DISTRIBUTIONS = (
    "mlflow",
    "scikit-learn",
    "xgboost-cpu",
    "duckdb",
    "polars",
    "pandas",
    "numpy",
    "pyarrow",
)


@dataclass(frozen=True)
class Candidate:
    family: Family
    params: dict[str, Any]
    estimator: Any
    threshold: ThresholdChoice
    cv_log_loss: float
    cv_roc_auc: float
    n_trials: int
    validation: dict[str, float]
    run_id: str
    model_uri: str


def candidate_key(family: Family) -> dg.AssetKey:
    return dg.AssetKey(["ml", f"candidate_{family}"])


def serving_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in SERVING_DISTRIBUTIONS]


def train_candidate(
    family: Family, snapshot: TrainingSnapshot, config: TrainingConfig, tracking: MlflowTracking, context
) -> Candidate:
    splits = split_frames(snapshot.features)
    X_train, y_train = feature_matrix(splits.train, snapshot.feature_columns), labels(splits.train)
    X_val, y_val = feature_matrix(splits.validation, snapshot.feature_columns), labels(splits.validation)
    if config.shuffle_labels:
        y_train = np.random.default_rng(config.seed).permutation(y_train)
    calibrate = needs_calibration(family)
    tags = {
        "family": family,
        "data_version": snapshot.data_version,
        "shuffled_labels": str(config.shuffle_labels),
    }
    with tracking.child_run(context, f"candidate-{family}", tags=tags) as run:
        mlflow.log_params({"family": family, "calibrated": calibrate, **config.model_dump()})

        def log_trial(trial: TrialRecord) -> None:
            with mlflow.start_run(
                run_name=f"{family}-trial-{trial.number:03d}", nested=True, tags={"family": family}
            ):
                mlflow.log_params(trial.params)
                mlflow.log_metrics(
                    {
                        "cv_log_loss": trial.cv_log_loss,
                        "cv_roc_auc": trial.cv_roc_auc,
                        "duration_s": trial.duration_s,
                    }
                )

        tuned = tune(
            family,
            X_train,
            y_train,
            n_trials=config.n_trials,
            timeout_s=config.timeout_s,
            seed=config.seed,
            cv_folds=config.cv_folds,
            calibrate=calibrate,
            on_trial=log_trial,
        )
        estimator = fit_final(family, tuned.best_params, X_train, y_train, config.seed, calibrate)
        p_val = estimator.predict_proba(X_val)[:, 1]
        choice = cost_based_threshold(
            y_val, p_val, config.offer_cost, config.saved_customer_value, config.offer_success_rate
        )
        validation = classification_metrics(y_val, p_val, choice.threshold)
        mlflow.log_params({f"best_{k}": v for k, v in tuned.best_params.items()})
        mlflow.log_params(
            {"threshold": choice.threshold, "threshold_rule": choice.rule, "n_trials_run": tuned.n_trials}
        )
        mlflow.log_metrics(
            {
                "cv_log_loss": tuned.cv_log_loss,
                "cv_roc_auc": tuned.cv_roc_auc,
                **{f"validation_{k}": v for k, v in validation.items()},
            }
        )
        mlflow.log_text(snapshot.feature_sql, "feature_sql.sql")
        mlflow.log_dict({"feature_columns": snapshot.feature_columns}, "feature_columns.json")
        model = ChurnModel(estimator, choice.threshold, snapshot.feature_sql, snapshot.feature_columns)
        info = log_churn_model(
            model,
            snapshot.raw_records.head(5).to_pandas(),
            pip_requirements=serving_requirements(),
            code_paths=[str(Path(churn_assets.__file__).parent)],
        )
    return Candidate(
        family=family,
        params=tuned.best_params,
        estimator=estimator,
        threshold=choice,
        cv_log_loss=tuned.cv_log_loss,
        cv_roc_auc=tuned.cv_roc_auc,
        n_trials=tuned.n_trials,
        validation=validation,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
    )


@dg.multi_asset(
    outs={
        family: dg.AssetOut(
            key=candidate_key(family),
            group_name="ml",
            kinds={"mlflow", "optuna", "xgboost" if family == "xgboost" else "scikitlearn"},
            automation_condition=dg.AutomationCondition.eager(),
            description=f"{family}: Optuna-tuned on the train split, thresholded on validation, logged to MLflow.",
            is_required=False,
        )
        for family in FAMILIES
    },
    ins={"training_snapshot": dg.AssetIn(key=["ml", "training_snapshot"])},
    can_subset=True,
    pool="training",
)
def model_candidates(
    context: dg.AssetExecutionContext,
    config: TrainingConfig,
    training_snapshot: TrainingSnapshot,
    mlflow_tracking: MlflowTracking,
):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for family in FAMILIES:
        if candidate_key(family) not in context.selected_asset_keys:
            continue
        candidate = train_candidate(family, training_snapshot, config, mlflow_tracking, context)
        context.log.info(
            f"{family}: cv log loss {candidate.cv_log_loss:.4f}, validation ROC AUC "
            f"{candidate.validation['roc_auc']:.4f}, threshold {candidate.threshold.threshold:.3f}"
        )
        yield dg.Output(
            candidate,
            output_name=family,
            metadata={
                "cv_log_loss": candidate.cv_log_loss,
                "cv_roc_auc": candidate.cv_roc_auc,
                "validation_roc_auc": candidate.validation["roc_auc"],
                "validation_log_loss": candidate.validation["log_loss"],
                "threshold": candidate.threshold.threshold,
                "n_trials": candidate.n_trials,
                "best_params": dg.MetadataValue.json(candidate.params),
                "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(candidate.run_id)),
                "data_version": training_snapshot.data_version,
            },
        )

"""Candidate models, one per family (tuned with Optuna) and their soft-voting ensemble: each scored by
repeated cross-validation, fitted, thresholded and logged to MLflow."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import dagster as dg
import mlflow
import numpy as np
import optuna
from sklearn.frozen import FrozenEstimator

import churn_assets
from churn_assets.ml.crossval import CrossValidated, cross_validated, soft_vote
from churn_assets.ml.families import (
    CANDIDATES,
    ENSEMBLE,
    FAMILIES,
    CandidateName,
    Family,
    build_ensemble,
    build_estimator,
    needs_calibration,
)
from churn_assets.ml.matrix import feature_matrix, labels, split_frames
from churn_assets.ml.metrics import classification_metrics
from churn_assets.ml.pyfunc import ChurnModel, log_churn_model
from churn_assets.ml.threshold import ThresholdChoice, cost_based_threshold
from churn_assets.ml.tuning import TrialRecord, fit_final, tune
from churn_assets.training.config import TrainingConfig
from churn_assets.training.keys import TRAINING_SNAPSHOT, candidate_key
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
class Fitted:
    """A candidate's configuration, fitted on the train split, and its repeated-CV scores there."""

    params: dict[str, Any]
    estimator: Any
    quality: CrossValidated
    n_trials: int


@dataclass(frozen=True)
class Candidate:
    family: CandidateName
    params: dict[str, Any]
    estimator: Any
    threshold: ThresholdChoice
    quality: CrossValidated  # repeated stratified CV on the train split
    n_trials: int
    validation: dict[str, float]
    run_id: str
    model_uri: str


def serving_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in SERVING_DISTRIBUTIONS]


def quality_metrics(quality: CrossValidated) -> dict[str, float]:
    """Means of the repeated CV and, for the ranking metrics, the corrected resampled t 95% interval."""
    metrics = {f"cv_{m}": quality.mean(m) for m in ("roc_auc", "pr_auc", "log_loss", "brier")}
    for m in ("roc_auc", "pr_auc"):
        interval = quality.interval(m)
        metrics |= {f"cv_{m}_ci_low": interval.low, f"cv_{m}_ci_high": interval.high}
    return metrics


def tuned_family(family: Family, config: TrainingConfig) -> Callable[[np.ndarray, np.ndarray], Fitted]:
    """Optuna search (every trial a nested MLflow run), then the calibrated best params, CV-scored and fitted."""

    def fit(X: np.ndarray, y: np.ndarray) -> Fitted:
        calibrate = needs_calibration(family)
        mlflow.log_params({"calibrated": calibrate})

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
            X,
            y,
            n_trials=config.n_trials,
            timeout_s=config.timeout_s,
            seed=config.seed,
            cv_folds=config.cv_folds,
            on_trial=log_trial,
        )
        quality = cross_validated(
            build_estimator(family, tuned.best_params, config.seed, calibrate=calibrate),
            X,
            y,
            n_splits=config.quality_cv_folds,
            n_repeats=config.quality_cv_repeats,
            seed=config.seed,
            n_jobs=config.quality_cv_jobs,
        )
        estimator = fit_final(family, tuned.best_params, X, y, config.seed, calibrate)
        return Fitted(tuned.best_params, estimator, quality, tuned.n_trials)

    return fit


def soft_voting_ensemble(members: Mapping[Family, Candidate]) -> Callable[[np.ndarray, np.ndarray], Fitted]:
    """The members as fitted (nothing is refitted); its CV scores are the members' CV probabilities averaged."""

    def fit(X: np.ndarray, y: np.ndarray) -> Fitted:
        mlflow.log_params({"members": ",".join(members), "voting": "soft"})
        estimator = build_ensemble({f: FrozenEstimator(c.estimator) for f, c in members.items()}).fit(X, y)
        params = {f"{f}__{k}": v for f, c in members.items() for k, v in c.params.items()}
        quality = soft_vote([c.quality for c in members.values()], y)
        return Fitted(params, estimator, quality, n_trials=0)

    return fit


def train_candidate(
    family: CandidateName,
    fit: Callable[[np.ndarray, np.ndarray], Fitted],
    snapshot: TrainingSnapshot,
    config: TrainingConfig,
    tracking: MlflowTracking,
    context,
) -> Candidate:
    splits = split_frames(snapshot.features)
    X_train, y_train = feature_matrix(splits.train, snapshot.feature_columns), labels(splits.train)
    X_val, y_val = feature_matrix(splits.validation, snapshot.feature_columns), labels(splits.validation)
    if config.shuffle_labels:
        y_train = np.random.default_rng(config.seed).permutation(y_train)
    tags = {
        "family": family,
        "data_version": snapshot.data_version,
        "shuffled_labels": str(config.shuffle_labels),
    }
    with tracking.child_run(context, f"candidate-{family}", tags=tags) as run:
        mlflow.log_params({"family": family, **config.model_dump()})
        fitted = fit(X_train, y_train)
        estimator = fitted.estimator
        p_val = estimator.predict_proba(X_val)[:, 1]
        choice = cost_based_threshold(
            y_val, p_val, config.offer_cost, config.saved_customer_value, config.offer_success_rate
        )
        validation = classification_metrics(y_val, p_val, choice.threshold)
        mlflow.log_params({f"best_{k}": v for k, v in fitted.params.items()})
        mlflow.log_params(
            {"threshold": choice.threshold, "threshold_rule": choice.rule, "n_trials_run": fitted.n_trials}
        )
        mlflow.log_metrics(
            {
                **quality_metrics(fitted.quality),
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
        params=fitted.params,
        estimator=estimator,
        threshold=choice,
        quality=fitted.quality,
        n_trials=fitted.n_trials,
        validation=validation,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
    )


DESCRIPTIONS: dict[CandidateName, str] = {
    **{
        family: f"{family}: Optuna-tuned on the train split, scored by repeated stratified CV there, thresholded "
        "on validation, logged to MLflow."
        for family in FAMILIES
    },
    ENSEMBLE: "Soft voting (mean probability) of the three tuned families as fitted, scored on the same CV "
    "splits, thresholded on validation, logged to MLflow. Needs its members: selecting it trains all three.",
}
KINDS = {
    "logistic_regression": {"mlflow", "optuna", "scikitlearn"},
    "random_forest": {"mlflow", "optuna", "scikitlearn"},
    "xgboost": {"mlflow", "optuna", "xgboost"},
    ENSEMBLE: {"mlflow", "scikitlearn", "xgboost"},
}


@dg.multi_asset(
    outs={
        name: dg.AssetOut(
            key=candidate_key(name),
            group_name="ml",
            kinds=KINDS[name],
            automation_condition=dg.AutomationCondition.eager(),
            description=DESCRIPTIONS[name],
            is_required=False,
        )
        for name in CANDIDATES
    },
    ins={"training_snapshot": dg.AssetIn(key=TRAINING_SNAPSHOT)},
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
    selected = {name for name in CANDIDATES if candidate_key(name) in context.selected_asset_keys}
    members: dict[Family, Candidate] = {}
    for family in FAMILIES:
        if family in selected or ENSEMBLE in selected:
            members[family] = train_candidate(
                family, tuned_family(family, config), training_snapshot, config, mlflow_tracking, context
            )
            if family in selected:
                yield _output(members[family], training_snapshot, mlflow_tracking, context)
    if ENSEMBLE in selected:
        ensemble = train_candidate(
            ENSEMBLE, soft_voting_ensemble(members), training_snapshot, config, mlflow_tracking, context
        )
        yield _output(ensemble, training_snapshot, mlflow_tracking, context)


def _output(
    candidate: Candidate, snapshot: TrainingSnapshot, tracking: MlflowTracking, context
) -> dg.Output[Candidate]:
    name = candidate.family
    cv = quality_metrics(candidate.quality)
    context.log.info(
        f"{name}: CV ROC AUC {cv['cv_roc_auc']:.4f} ({cv['cv_roc_auc_ci_low']:.3f}-{cv['cv_roc_auc_ci_high']:.3f}), "
        f"validation log loss {candidate.validation['log_loss']:.4f}, threshold {candidate.threshold.threshold:.3f}"
    )
    return dg.Output(
        candidate,
        output_name=name,
        metadata={
            **cv,
            "cv_splits": f"{candidate.quality.n_repeats} x {candidate.quality.n_splits}-fold stratified",
            "validation_roc_auc": candidate.validation["roc_auc"],
            "validation_log_loss": candidate.validation["log_loss"],
            "validation_brier": candidate.validation["brier"],
            "threshold": candidate.threshold.threshold,
            "n_trials": candidate.n_trials,
            "best_params": dg.MetadataValue.json(candidate.params),
            "mlflow_run": dg.MetadataValue.url(tracking.run_url(candidate.run_id)),
            "data_version": snapshot.data_version,
        },
    )

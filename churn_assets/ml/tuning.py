"""Hyperparameter search by cross-validated log loss, one Optuna study per family.

Log loss is a proper scoring rule, so the search rewards honest probabilities rather than a good
ranking alone. The chosen params are scored again, calibrated and by repeated cross-validation, by
the caller (`churn_assets.ml.crossval`); the decision threshold is picked later on the validation split.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from sklearn.pipeline import Pipeline

from churn_assets.ml.crossval import cross_validated
from churn_assets.ml.families import DEFAULT_PARAMS, Family, build_estimator, suggest_params


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict[str, Any]
    cv_log_loss: float
    cv_roc_auc: float
    duration_s: float


@dataclass(frozen=True)
class TuningResult:
    family: Family
    best_params: dict[str, Any]
    n_trials: int


def tune(
    family: Family,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    cv_folds: int = 5,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> TuningResult:
    """Search `family`'s space by `cv_folds`-fold stratified CV; with n_trials=0 the defaults are returned.

    Deterministic for a fixed seed as long as `timeout_s` does not cut the study short. Trials compare
    uncalibrated models: sigmoid calibration is monotone, so it would cost five extra fits per trial
    for little change in the ranking of params.
    """
    best_params: dict[str, Any] = dict(DEFAULT_PARAMS[family])
    n_run = 0
    if n_trials > 0:
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))

        def objective(trial: optuna.Trial) -> float:
            estimator = build_estimator(family, suggest_params(family, trial), seed)
            scores = cross_validated(estimator, X, y, n_splits=cv_folds, seed=seed)
            trial.set_user_attr("cv_roc_auc", scores.mean("roc_auc"))
            return scores.mean("log_loss")

        def report(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if on_trial is None or trial.state != optuna.trial.TrialState.COMPLETE:
                return
            if trial.value is None:  # a complete trial of a single-objective study always has its value
                raise RuntimeError(f"trial {trial.number} completed without a value")
            on_trial(
                TrialRecord(
                    number=trial.number,
                    params=dict(trial.params),
                    cv_log_loss=trial.value,
                    cv_roc_auc=float(trial.user_attrs["cv_roc_auc"]),
                    duration_s=trial.duration.total_seconds() if trial.duration else 0.0,
                )
            )

        study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=[report])
        best_params = {**best_params, **study.best_params}
        n_run = len(study.trials)

    return TuningResult(family=family, best_params=best_params, n_trials=n_run)


def fit_final(
    family: Family, params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seed: int, calibrate: bool
) -> Pipeline:
    """The model to register: refit on all of `X` with the chosen params."""
    return build_estimator(family, params, seed, calibrate=calibrate).fit(X, y)

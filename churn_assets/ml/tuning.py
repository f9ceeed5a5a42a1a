"""Hyperparameter search by cross-validated log loss, one Optuna study per family.

Log loss is a proper scoring rule, so the search rewards honest probabilities rather than a good
ranking alone; the decision threshold is picked later from the out-of-fold probabilities.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from sklearn.base import clone
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from churn_assets.ml.families import DEFAULT_PARAMS, Family, build_estimator, suggest_params


@dataclass(frozen=True)
class CVScores:
    log_loss: float
    roc_auc: float
    oof_proba: np.ndarray


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
    cv_log_loss: float
    cv_roc_auc: float
    n_trials: int
    oof_proba: np.ndarray


def cross_validate(
    family: Family,
    params: Mapping[str, Any],
    X: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    cv_folds: int = 5,
    calibrate: bool = False,
) -> CVScores:
    """Mean per-fold log loss and ROC AUC, plus the out-of-fold probability of every row."""
    folds = StratifiedKFold(cv_folds, shuffle=True, random_state=seed)
    template = build_estimator(family, params, seed, calibrate=calibrate)
    oof = np.empty(len(y), dtype=np.float64)
    losses, aucs = [], []
    for train_idx, val_idx in folds.split(X, y):
        fold_model = clone(template).fit(X[train_idx], y[train_idx])
        oof[val_idx] = fold_model.predict_proba(X[val_idx])[:, 1]
        losses.append(log_loss(y[val_idx], oof[val_idx], labels=[0, 1]))
        aucs.append(roc_auc_score(y[val_idx], oof[val_idx]))
    return CVScores(log_loss=float(np.mean(losses)), roc_auc=float(np.mean(aucs)), oof_proba=oof)


def tune(
    family: Family,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_trials: int,
    timeout_s: float | None,
    seed: int,
    cv_folds: int = 5,
    calibrate: bool = False,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> TuningResult:
    """Search `family`'s space; with n_trials=0 the defaults are scored instead.

    Deterministic for a fixed seed as long as `timeout_s` does not cut the study short.
    Trials compare uncalibrated models; `calibrate` applies to the final re-scoring of the best
    params only, so the returned scores and out-of-fold probabilities match what
    `fit_final(..., calibrate=calibrate)` will produce.
    """
    best_params: dict[str, Any] = dict(DEFAULT_PARAMS[family])
    n_run = 0
    if n_trials > 0:
        study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))

        def objective(trial: optuna.Trial) -> float:
            scores = cross_validate(family, suggest_params(family, trial), X, y, seed=seed, cv_folds=cv_folds)
            trial.set_user_attr("cv_roc_auc", scores.roc_auc)
            return scores.log_loss

        def report(_: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if on_trial is None or trial.state != optuna.trial.TrialState.COMPLETE:
                return
            on_trial(
                TrialRecord(
                    number=trial.number,
                    params=dict(trial.params),
                    cv_log_loss=float(trial.value),
                    cv_roc_auc=float(trial.user_attrs["cv_roc_auc"]),
                    duration_s=trial.duration.total_seconds() if trial.duration else 0.0,
                )
            )

        study.optimize(objective, n_trials=n_trials, timeout=timeout_s, callbacks=[report])
        best_params = {**best_params, **study.best_params}
        n_run = len(study.trials)

    best = cross_validate(family, best_params, X, y, seed=seed, cv_folds=cv_folds, calibrate=calibrate)
    return TuningResult(
        family=family,
        best_params=best_params,
        cv_log_loss=best.log_loss,
        cv_roc_auc=best.roc_auc,
        n_trials=n_run,
        oof_proba=best.oof_proba,
    )


def fit_final(
    family: Family, params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, seed: int, calibrate: bool
) -> Pipeline:
    """The model to register: refit on all of `X` with the chosen params."""
    return build_estimator(family, params, seed, calibrate=calibrate).fit(X, y)

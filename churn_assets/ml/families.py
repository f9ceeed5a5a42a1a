"""The candidate models: each tuned family (how it is built, its defaults and its search space) and
their soft-voting ensemble.

Every estimator is a numpy-only Pipeline whose last step is named "model", so serving scores a
single row without pandas or column transformers. Class re-weighting (class_weight,
scale_pos_weight) is deliberately absent: it distorts predicted probabilities, and those are
consumed downstream by the cost-based threshold.
"""

from collections.abc import Mapping
from typing import Any, Literal

import optuna
import xgboost
from sklearn.base import ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

Family = Literal["logistic_regression", "random_forest", "xgboost"]
FAMILIES: tuple[Family, ...] = ("logistic_regression", "random_forest", "xgboost")
ENSEMBLE: Literal["ensemble"] = "ensemble"
CandidateName = Family | Literal["ensemble"]
CANDIDATES: tuple[CandidateName, ...] = (*FAMILIES, ENSEMBLE)

# Single-threaded: scoring one row through a thread pool costs milliseconds (RF via joblib, XGB via
# OpenMP), more than the work itself, and a ~7k-row data set gains little from threads in training.
N_JOBS = 1
# Sigmoid rather than isotonic: a two-parameter map cannot overfit the few thousand training rows.
CALIBRATION_METHOD = "sigmoid"
CALIBRATION_FOLDS = 5

DEFAULT_PARAMS: dict[Family, dict[str, Any]] = {
    "logistic_regression": {"C": 1.0},
    "random_forest": {"n_estimators": 200, "max_depth": 12, "min_samples_leaf": 5, "max_features": "sqrt"},
    "xgboost": {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "max_depth": 4,
        "min_child_weight": 1.0,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 1.0,
    },
}


def needs_calibration(family: Family) -> bool:
    """Logistic regression is fitted on log loss and is calibrated already; tree ensembles are not."""
    return family != "logistic_regression"


def build_estimator(
    family: Family, params: Mapping[str, Any], seed: int, *, calibrate: bool = False
) -> Pipeline:
    """An unfitted Pipeline; `params` override the family defaults.

    `calibrate` wraps tree families in CalibratedClassifierCV(ensemble=False): one underlying model
    keeps single-row scoring cheap. It is ignored for logistic regression.
    """
    # Unknown families fall through to the ValueError in _base_model.
    model = _base_model(family, {**DEFAULT_PARAMS.get(family, {}), **params}, seed)
    if calibrate and needs_calibration(family):
        model = CalibratedClassifierCV(model, method=CALIBRATION_METHOD, cv=CALIBRATION_FOLDS, ensemble=False)
    if family == "logistic_regression":
        return Pipeline([("scale", StandardScaler()), ("model", model)])
    return Pipeline([("model", model)])


def build_ensemble(members: Mapping[Family, Any]) -> Pipeline:
    """Soft voting with equal weights: the mean of the members' (calibrated) churn probabilities.

    Averaging probabilities keeps them probabilities, and it needs no fitted weights, so no data is
    spent on a meta-model (stacking would refit every member on inner folds, about 6x the cost).
    Pass members wrapped in sklearn.frozen.FrozenEstimator to reuse fitted models; `fit` then only
    records the classes.
    """
    return Pipeline([("model", VotingClassifier(list(members.items()), voting="soft"))])


def _base_model(family: Family, params: dict[str, Any], seed: int) -> ClassifierMixin:
    match family:
        case "logistic_regression":
            return LogisticRegression(**params, max_iter=2000, random_state=seed)
        case "random_forest":
            return RandomForestClassifier(**params, n_jobs=N_JOBS, random_state=seed)
        case "xgboost":
            return xgboost.XGBClassifier(
                **params,
                objective="binary:logistic",
                eval_metric="logloss",
                tree_method="hist",
                n_jobs=N_JOBS,
                random_state=seed,
            )
    raise ValueError(f"unknown model family: {family!r}")


def suggest_params(family: Family, trial: optuna.Trial) -> dict[str, Any]:
    """Search spaces sized for ~5k training rows and a few dozen numeric features."""
    match family:
        case "logistic_regression":
            return {"C": trial.suggest_float("C", 1e-3, 1e2, log=True)}
        case "random_forest":
            return {
                "n_estimators": trial.suggest_int("n_estimators", 100, 400, step=50),
                "max_depth": trial.suggest_int("max_depth", 3, 16),
                "min_samples_leaf": trial.suggest_int("min_samples_leaf", 1, 50, log=True),
                "max_features": trial.suggest_float("max_features", 0.1, 0.6),
            }
        case "xgboost":
            return {
                "n_estimators": trial.suggest_int("n_estimators", 100, 800, step=50),
                "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
                "max_depth": trial.suggest_int("max_depth", 2, 8),
                "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 20.0, log=True),
                "subsample": trial.suggest_float("subsample", 0.5, 1.0),
                "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
                "reg_lambda": trial.suggest_float("reg_lambda", 1e-2, 10.0, log=True),
            }
    raise ValueError(f"unknown model family: {family!r}")

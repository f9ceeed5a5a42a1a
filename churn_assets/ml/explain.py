"""Which features drive a fitted model, for any family and through Pipeline / calibration wrappers."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xgboost
from matplotlib.figure import Figure
from sklearn.calibration import CalibratedClassifierCV
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline


def _fitted_models(estimator: Any, X: np.ndarray | None = None) -> list[tuple[Any, np.ndarray | None]]:
    """Every innermost fitted model, paired with `X` as that model sees it (after preprocessing)."""
    if isinstance(estimator, Pipeline):
        Xt = X if X is None or len(estimator) == 1 else estimator[:-1].transform(X)
        return _fitted_models(estimator[-1], Xt)
    if isinstance(estimator, CalibratedClassifierCV):
        return [pair for cc in estimator.calibrated_classifiers_ for pair in _fitted_models(cc.estimator, X)]
    return [(estimator, X)]


def _native_importance(model: Any) -> np.ndarray:
    # Logistic-regression coefficients are comparable only because the pipeline standardises inputs.
    if hasattr(model, "coef_"):
        return np.abs(np.ravel(model.coef_))
    if hasattr(model, "feature_importances_"):
        return np.asarray(model.feature_importances_, dtype=np.float64)
    raise TypeError(f"{type(model).__name__} has neither coef_ nor feature_importances_")


def _ranked(feature_names: Sequence[str], values: np.ndarray) -> list[tuple[str, float]]:
    if len(feature_names) != len(values):
        raise ValueError(f"{len(feature_names)} feature names for {len(values)} importances")
    return sorted(zip(feature_names, map(float, values), strict=True), key=lambda fv: fv[1], reverse=True)


def feature_importance(
    estimator: Any,
    feature_names: Sequence[str],
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    *,
    n_repeats: int = 5,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """(feature, importance), most important first.

    With X and y: permutation importance (increase in log loss), comparable across families.
    Without: |coefficients| or the trees' own importances, averaged over calibration folds.
    """
    if X is not None and y is not None:
        result = permutation_importance(
            estimator, X, y, scoring="neg_log_loss", n_repeats=n_repeats, random_state=seed
        )
        return _ranked(feature_names, result.importances_mean)
    per_model = [_native_importance(model) for model, _ in _fitted_models(estimator)]
    return _ranked(feature_names, np.mean(per_model, axis=0))


def xgboost_contributions(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Exact TreeSHAP values in log-odds, shape (n_rows, n_features + 1); the last column is the bias.

    Rows sum to the booster's margin. Under calibration they are averaged over the fold boosters,
    so they explain the mean uncalibrated margin, not the calibrated probability.
    """
    boosters = [
        (model.get_booster(), Xm)
        for model, Xm in _fitted_models(estimator, X)
        if isinstance(model, xgboost.XGBModel)
    ]
    if not boosters:
        raise TypeError("estimator contains no fitted XGBoost model")
    return np.mean(
        [booster.predict(xgboost.DMatrix(Xm), pred_contribs=True) for booster, Xm in boosters], axis=0
    )


def mean_abs_shap(estimator: Any, X: np.ndarray, feature_names: Sequence[str]) -> list[tuple[str, float]]:
    """Global SHAP importance: mean |contribution| per feature, most important first."""
    contributions = xgboost_contributions(estimator, X)[:, :-1]
    return _ranked(feature_names, np.abs(contributions).mean(axis=0))


def plot_shap_summary(
    estimator: Any, X: np.ndarray, feature_names: Sequence[str], path: Path, max_display: int = 15
) -> Path:
    """Beeswarm-style summary: one row per top feature, dots coloured by the feature's value."""
    contributions = xgboost_contributions(estimator, X)[:, :-1]
    top = np.argsort(-np.abs(contributions).mean(axis=0))[:max_display][::-1]
    rng = np.random.default_rng(0)
    fig = Figure(figsize=(8, 0.4 * len(top) + 1.5), layout="constrained")
    ax = fig.subplots()
    for row, j in enumerate(top):
        values = X[:, j]
        spread = values.max() - values.min()
        colour = (values - values.min()) / spread if spread > 0 else np.full(len(values), 0.5)
        jitter = rng.uniform(-0.3, 0.3, len(values))
        points = ax.scatter(contributions[:, j], row + jitter, c=colour, cmap="coolwarm", s=6, vmin=0, vmax=1)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(top)), [feature_names[j] for j in top])
    ax.set_xlabel("SHAP value (impact on log-odds of churn)")
    fig.colorbar(points, ax=ax, label="feature value (low → high)")
    fig.savefig(path, dpi=120)
    return Path(path)


def row_contributions(estimator: Any, X: np.ndarray) -> np.ndarray:
    """Per-row contributions to the log-odds, shape (n_rows, n_features), for linear and XGBoost models.

    Linear: standardised value x coefficient (the pipeline's scaler is applied first). XGBoost: TreeSHAP.
    Other families (random forest) raise TypeError: they have no exact, cheap per-row attribution here.
    """
    pairs = _fitted_models(estimator, X)
    if all(isinstance(model, xgboost.XGBModel) for model, _ in pairs):
        return xgboost_contributions(estimator, X)[:, :-1]
    if all(hasattr(model, "coef_") for model, _ in pairs):
        return np.mean([Xm * np.ravel(model.coef_) for model, Xm in pairs], axis=0)
    raise TypeError(f"no per-row attribution for {type(pairs[0][0]).__name__}")

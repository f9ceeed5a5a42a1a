from pathlib import Path

import numpy as np
import pytest
import xgboost
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV

from churn_assets.ml.explain import (
    feature_importance,
    mean_abs_shap,
    plot_shap_summary,
    row_contributions,
    xgboost_contributions,
)
from churn_assets.ml.families import FAMILIES, build_ensemble, build_estimator

NAMES = ["signal", "noise_a", "noise_b", "noise_c"]
SMALL = {"logistic_regression": {}, "random_forest": {"n_estimators": 30}, "xgboost": {"n_estimators": 30}}


@pytest.fixture(scope="module")
def one_signal() -> tuple[np.ndarray, np.ndarray]:
    """Only the first column carries information about the label."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (rng.uniform(size=400) < expit(2.5 * X[:, 0])).astype(int)
    return X, y


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("permutation", [False, True])
def test_importance_ranks_the_signal_first(
    one_signal: tuple[np.ndarray, np.ndarray], family: str, permutation: bool
) -> None:
    X, y = one_signal
    model = build_estimator(family, SMALL[family], seed=0, calibrate=True).fit(X, y)

    ranking = feature_importance(model, NAMES, *((X, y) if permutation else ()), n_repeats=3)

    assert ranking[0][0] == "signal"
    assert sorted(name for name, _ in ranking) == sorted(NAMES)
    assert ranking == sorted(ranking, key=lambda fv: fv[1], reverse=True)


def test_shap_contributions_sum_to_the_margin(one_signal: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = one_signal
    model = build_estimator("xgboost", SMALL["xgboost"], seed=0).fit(X, y)

    contributions = xgboost_contributions(model, X)

    margin = model[-1].get_booster().predict(xgboost.DMatrix(X), output_margin=True)
    assert contributions.shape == (len(X), len(NAMES) + 1)
    np.testing.assert_allclose(contributions.sum(axis=1), margin, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(expit(contributions.sum(axis=1)), model.predict_proba(X)[:, 1], atol=1e-5)


def test_shap_through_calibration_averages_the_fold_boosters(
    one_signal: tuple[np.ndarray, np.ndarray],
) -> None:
    X, y = one_signal
    base = build_estimator("xgboost", SMALL["xgboost"], seed=0)
    model = CalibratedClassifierCV(base, method="isotonic", cv=3, ensemble=True).fit(X, y)

    contributions = xgboost_contributions(model, X)

    margins = [
        cc.estimator[-1].get_booster().predict(xgboost.DMatrix(X), output_margin=True)
        for cc in model.calibrated_classifiers_
    ]
    assert len(margins) == 3
    np.testing.assert_allclose(contributions.sum(axis=1), np.mean(margins, axis=0), rtol=1e-5, atol=1e-5)
    assert mean_abs_shap(model, X, NAMES)[0][0] == "signal"


def test_shap_summary_plot_is_a_png(one_signal: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, y = one_signal
    model = build_estimator("xgboost", SMALL["xgboost"], seed=0, calibrate=True).fit(X, y)

    path = plot_shap_summary(model, X, NAMES, tmp_path / "shap.png")

    assert path.read_bytes().startswith(b"\x89PNG")


def test_shap_needs_an_xgboost_model(one_signal: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = one_signal
    model = build_estimator("logistic_regression", {}, seed=0).fit(X, y)
    with pytest.raises(TypeError, match="XGBoost"):
        xgboost_contributions(model, X)


def test_the_ensemble_has_permutation_importance_but_no_per_row_attribution(
    one_signal: tuple[np.ndarray, np.ndarray],
) -> None:
    """Averaged probabilities do not split additively over features: `?explain=true` must refuse, not guess."""
    X, y = one_signal
    ensemble = build_ensemble(
        {f: build_estimator(f, SMALL[f], seed=0, calibrate=True) for f in FAMILIES}
    ).fit(X, y)

    assert feature_importance(ensemble, NAMES, X, y, n_repeats=3)[0][0] == "signal"
    with pytest.raises(TypeError, match="no per-row attribution for VotingClassifier"):
        row_contributions(ensemble, X[:2])

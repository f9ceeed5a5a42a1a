import numpy as np
import optuna
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline

from churn_assets.ml.families import DEFAULT_PARAMS, FAMILIES, build_estimator, suggest_params

SMALL = {"logistic_regression": {}, "random_forest": {"n_estimators": 30}, "xgboost": {"n_estimators": 30}}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("calibrate", [False, True])
def test_each_family_fits_and_gives_probabilities(
    churn_like: tuple[np.ndarray, np.ndarray], family: str, calibrate: bool
) -> None:
    X, y = churn_like
    model = build_estimator(family, SMALL[family], seed=0, calibrate=calibrate).fit(X, y)

    proba = model.predict_proba(X)[:, 1]
    assert isinstance(model, Pipeline)
    assert proba.shape == (len(y),)
    assert np.all((proba >= 0) & (proba <= 1))
    # Better than chance on its own training data, i.e. it learned something.
    assert proba[y == 1].mean() > proba[y == 0].mean() + 0.2
    wrapped = isinstance(model[-1], CalibratedClassifierCV)
    assert wrapped == (calibrate and family != "logistic_regression")


@pytest.mark.parametrize("family", FAMILIES)
def test_suggested_params_are_buildable_and_cover_the_defaults(family: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    params = suggest_params(family, study.ask())

    assert set(params) == set(DEFAULT_PARAMS[family])
    build_estimator(family, params, seed=0)  # constructor accepts every suggested name


def test_unknown_family_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model family"):
        build_estimator("svm", {}, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown model family"):
        suggest_params("svm", optuna.create_study().ask())  # type: ignore[arg-type]

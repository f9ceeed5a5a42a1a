import numpy as np

from churn_assets.ml.families import DEFAULT_PARAMS
from churn_assets.ml.tuning import TrialRecord, fit_final, tune


def test_same_seed_gives_same_search(churn_like: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = churn_like
    runs: list[list[TrialRecord]] = [[], [], []]
    first = tune(
        "logistic_regression", X, y, n_trials=4, timeout_s=None, seed=3, cv_folds=3, on_trial=runs[0].append
    )
    second = tune(
        "logistic_regression", X, y, n_trials=4, timeout_s=None, seed=3, cv_folds=3, on_trial=runs[1].append
    )
    other = tune(
        "logistic_regression", X, y, n_trials=4, timeout_s=None, seed=4, cv_folds=3, on_trial=runs[2].append
    )

    assert first.best_params == second.best_params
    assert [r.cv_log_loss for r in runs[0]] == [r.cv_log_loss for r in runs[1]]
    assert first.best_params != other.best_params


def test_xgboost_tuning_reports_every_trial(churn_like: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = churn_like
    records: list[TrialRecord] = []
    result = tune("xgboost", X, y, n_trials=2, timeout_s=60, seed=0, cv_folds=3, on_trial=records.append)

    assert result.n_trials == 2
    assert [r.number for r in records] == [0, 1]
    best = min(records, key=lambda r: r.cv_log_loss)
    assert {k: result.best_params[k] for k in best.params} == best.params
    assert all(0.5 < r.cv_roc_auc <= 1 and r.duration_s > 0 for r in records)
    assert set(result.best_params) == set(DEFAULT_PARAMS["xgboost"])


def test_zero_trials_returns_the_defaults(churn_like: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = churn_like
    result = tune("logistic_regression", X, y, n_trials=0, timeout_s=None, seed=0, cv_folds=3)

    assert result.n_trials == 0
    assert result.best_params == DEFAULT_PARAMS["logistic_regression"]


def test_fit_final_is_fitted_on_all_rows(churn_like: tuple[np.ndarray, np.ndarray]) -> None:
    X, y = churn_like
    model = fit_final("random_forest", {"n_estimators": 20}, X, y, seed=0, calibrate=True)
    assert model.predict_proba(X[:3]).shape == (3, 2)

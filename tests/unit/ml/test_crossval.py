import numpy as np
import pytest
from scipy import stats
from sklearn.dummy import DummyClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from churn_assets.ml.crossval import (
    _holm,
    compare,
    corrected_interval,
    cross_validated,
    soft_vote,
    stratified_splits,
)
from churn_assets.ml.families import FAMILIES, build_ensemble, build_estimator, needs_calibration

SMALL = {"logistic_regression": {}, "random_forest": {"n_estimators": 20}, "xgboost": {"n_estimators": 20}}


def test_each_repeat_is_a_stratified_partition_and_the_first_is_the_search_folds() -> None:
    y = np.array([0] * 70 + [1] * 30)
    splits = stratified_splits(y, n_splits=2, n_repeats=3, seed=5)

    assert len(splits) == 6
    for r in range(3):
        tests = [test for _, test in splits[2 * r : 2 * r + 2]]
        assert sorted(np.concatenate(tests).tolist()) == list(range(100))  # every row tested once per repeat
        assert all(y[test].sum() == 15 for test in tests)  # stratified: 30 positives split evenly
    assert not np.array_equal(splits[0][1], splits[2][1])  # repeats reshuffle
    searched = list(StratifiedKFold(2, shuffle=True, random_state=5).split(np.zeros((100, 1)), y))
    for (train, test), (s_train, s_test) in zip(splits[:2], searched, strict=True):
        assert np.array_equal(train, s_train) and np.array_equal(test, s_test)


def test_scores_are_the_sklearn_metrics_of_the_held_out_probabilities(churn_like) -> None:
    X, y = churn_like
    model = build_estimator("logistic_regression", {}, seed=0)
    result = cross_validated(model, X, y, n_splits=2, n_repeats=2, seed=0)

    assert len(result.probas) == 4 and result.test_train_ratio == pytest.approx(1.0)
    for j, (test, proba) in enumerate(zip(result.test_indices, result.probas, strict=True)):
        assert result.scores["roc_auc"][j] == roc_auc_score(y[test], proba)
        assert result.scores["pr_auc"][j] == average_precision_score(y[test], proba)
    assert result.mean("roc_auc") == pytest.approx(np.mean(result.scores["roc_auc"]))
    in_parallel = cross_validated(model, X, y, n_splits=2, n_repeats=2, seed=0, n_jobs=2)
    for a, b in zip(result.probas, in_parallel.probas, strict=True):
        np.testing.assert_array_equal(a, b)


def test_soft_vote_equals_cross_validating_the_voting_ensemble(churn_like) -> None:
    """The shortcut (average the members' split probabilities) is what the registered ensemble would score."""
    X, y = churn_like
    members = {f: build_estimator(f, SMALL[f], seed=0, calibrate=needs_calibration(f)) for f in FAMILIES}
    scored = [cross_validated(m, X, y, n_splits=2, n_repeats=2, seed=1) for m in members.values()]

    shortcut = soft_vote(scored, y)
    direct = cross_validated(build_ensemble(members), X, y, n_splits=2, n_repeats=2, seed=1)

    for a, b in zip(shortcut.probas, direct.probas, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(shortcut.scores["roc_auc"], direct.scores["roc_auc"], atol=1e-12)


def test_frozen_members_make_an_ensemble_without_refitting(churn_like) -> None:
    X, y = churn_like
    fitted = {f: build_estimator(f, SMALL[f], seed=0).fit(X, y) for f in FAMILIES}
    ensemble = build_ensemble({f: FrozenEstimator(m) for f, m in fitted.items()}).fit(X[:50], y[:50])

    expected = np.mean([m.predict_proba(X)[:, 1] for m in fitted.values()], axis=0)
    np.testing.assert_allclose(ensemble.predict_proba(X)[:, 1], expected, atol=1e-12)
    assert ensemble.steps[-1][0] == "model"


def test_soft_vote_and_compare_refuse_members_scored_on_other_splits(churn_like) -> None:
    X, y = churn_like
    model = build_estimator("logistic_regression", {}, seed=0)
    a = cross_validated(model, X, y, n_splits=2, n_repeats=2, seed=0)
    b = cross_validated(model, X, y, n_splits=2, n_repeats=2, seed=1)
    with pytest.raises(ValueError, match="same splits"):
        soft_vote([a, b], y)
    with pytest.raises(ValueError, match="b was not cross-validated on the same splits as a"):
        compare({"a": a, "b": b}, "roc_auc")


def test_corrected_interval_is_the_naive_t_interval_widened_by_nadeau_bengio() -> None:
    values = np.array([0.81, 0.84, 0.83, 0.86, 0.82, 0.85, 0.84, 0.83, 0.80, 0.85])
    corrected = corrected_interval(values, test_train_ratio=1.0)
    naive_low, naive_high = stats.t.interval(
        0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values)
    )

    assert corrected.mean == pytest.approx(values.mean())
    # (1/J + n_test/n_train) / (1/J) = 1 + J for 2-fold: the interval is sqrt(11) times the naive one.
    assert (corrected.high - corrected.low) / (naive_high - naive_low) == pytest.approx(np.sqrt(11))
    with pytest.raises(ValueError, match="at least 2"):
        corrected_interval(values[:1], 1.0)


def test_holm_adjustment_matches_the_textbook_example() -> None:
    assert _holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert _holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_compare_finds_a_real_gap_and_no_gap_between_equal_models(churn_like) -> None:
    X, y = churn_like
    logistic = build_estimator("logistic_regression", {}, seed=0)
    results = {
        "logistic": cross_validated(logistic, X, y, n_splits=2, n_repeats=5, seed=0),
        "same_logistic": cross_validated(logistic, X, y, n_splits=2, n_repeats=5, seed=0),
        "prior_only": cross_validated(
            DummyClassifier(strategy="stratified", random_state=0), X, y, n_splits=2, n_repeats=5, seed=0
        ),
    }
    comparison = compare(results, "roc_auc")

    assert comparison.best in {"logistic", "same_logistic"}
    assert set(comparison.differences) == set(results) - {comparison.best}
    twin = comparison.differences[({"logistic", "same_logistic"} - {comparison.best}).pop()]
    assert twin.difference.mean == 0 and twin.p_value == 1.0 and not twin.beyond_noise
    chance = comparison.differences["prior_only"]
    assert chance.difference.high < 0 and chance.beyond_noise and chance.p_holm < 0.05
    assert comparison.intervals["prior_only"].low < 0.5 < comparison.intervals["prior_only"].high
    assert (comparison.n_splits, comparison.n_repeats) == (2, 5)
    # Lower is better for the proper scores: the best log loss is a logistic model too.
    assert compare(results, "log_loss").best in {"logistic", "same_logistic"}

"""Repeated stratified cross-validation, and intervals and paired tests that respect how its scores overlap.

The per-split scores of a repeated k-fold are not independent samples: training sets overlap across
splits and every row is tested once per repeat, so the naive standard error s/sqrt(J) is too small and
a naive t-test finds differences that are not there. The corrected resampled t of Nadeau and Bengio
("Inference for the generalization error", Machine Learning 52, 2003) replaces the variance of the mean
by (1/J + n_test/n_train) * s**2, with J - 1 degrees of freedom; Bouckaert and Frank (PAKDD 2004) showed
that it keeps the type I error near its nominal level for repeated k-fold. Paired comparisons apply the
same correction to the per-split differences of two models scored on the same splits.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from scipy import stats
from sklearn.base import clone
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

# metric -> (score function of (y, p), higher is better)
METRICS = {
    "roc_auc": (roc_auc_score, True),
    "pr_auc": (average_precision_score, True),
    "log_loss": (lambda y, p: log_loss(y, p, labels=[0, 1]), False),
    "brier": (brier_score_loss, False),
}


@dataclass(frozen=True)
class CrossValidated:
    """One model's out-of-split probabilities and scores, split by split (repeat-major order)."""

    n_splits: int
    n_repeats: int
    seed: int
    test_indices: tuple[np.ndarray, ...]
    probas: tuple[np.ndarray, ...]
    scores: dict[str, np.ndarray]  # metric -> one value per split

    @property
    def test_train_ratio(self) -> float:
        """n_test / n_train of a split: the Nadeau-Bengio correction's second term (1 for 2-fold)."""
        n_rows = sum(len(t) for t in self.test_indices) / self.n_repeats
        n_test = np.mean([len(t) for t in self.test_indices])
        return float(n_test / (n_rows - n_test))

    def mean(self, metric: str) -> float:
        return float(np.mean(self.scores[metric]))

    def interval(self, metric: str, confidence: float = 0.95) -> "Interval":
        return corrected_interval(self.scores[metric], self.test_train_ratio, confidence)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class PairedDifference:
    """`candidate` minus `reference` on one metric, over the same splits."""

    candidate: str
    reference: str
    metric: str
    difference: Interval
    p_value: float  # two-sided, corrected resampled paired t
    p_holm: float  # Holm-adjusted over every comparison with the same reference and metric
    beyond_noise: bool  # p_holm below alpha


def stratified_splits(
    y: np.ndarray, n_splits: int, n_repeats: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs; repeat r is StratifiedKFold(n_splits, shuffle=True, random_state=seed + r).

    So a single repeat is exactly the folds the hyperparameter search has always used for `seed`.
    """
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be at least 1, got {n_repeats}")
    dummy = np.zeros((len(y), 1))
    return [
        (train, test)
        for r in range(n_repeats)
        for train, test in StratifiedKFold(n_splits, shuffle=True, random_state=seed + r).split(dummy, y)
    ]


def _fit_predict(
    estimator: Any, X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray
) -> np.ndarray:
    return clone(estimator).fit(X[train], y[train]).predict_proba(X[test])[:, 1]


def _scored(
    y: np.ndarray,
    n_splits: int,
    n_repeats: int,
    seed: int,
    tests: Sequence[np.ndarray],
    probas: Sequence[np.ndarray],
) -> CrossValidated:
    scores = {
        name: np.array([fn(y[test], p) for test, p in zip(tests, probas, strict=True)], dtype=np.float64)
        for name, (fn, _) in METRICS.items()
    }
    return CrossValidated(n_splits, n_repeats, seed, tuple(tests), tuple(probas), scores)


def cross_validated(
    estimator: Any,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_splits: int,
    n_repeats: int = 1,
    seed: int,
    n_jobs: int = 1,
) -> CrossValidated:
    """Fit a clone of `estimator` on every split's training rows and score its held-out rows.

    `n_jobs` fits splits in parallel processes (joblib); the result does not depend on it.
    """
    splits = stratified_splits(y, n_splits, n_repeats, seed)
    probas = Parallel(n_jobs=n_jobs)(
        delayed(_fit_predict)(estimator, X, y, train, test) for train, test in splits
    )
    return _scored(y, n_splits, n_repeats, seed, [test for _, test in splits], probas)


def _same_splits(a: CrossValidated, b: CrossValidated) -> bool:
    return len(a.test_indices) == len(b.test_indices) and all(
        np.array_equal(x, y) for x, y in zip(a.test_indices, b.test_indices, strict=True)
    )


def soft_vote(members: Sequence[CrossValidated], y: np.ndarray) -> CrossValidated:
    """What an equal-weight soft-voting ensemble of `members` scores on their splits, without refitting.

    Exact for deterministic members (fixed seeds): on each split the ensemble would fit the very same
    member models, and soft voting averages their probabilities (VotingClassifier.predict_proba).
    """
    first = members[0]
    if not all(_same_splits(m, first) for m in members[1:]):
        raise ValueError("soft_vote needs members cross-validated on the same splits")
    probas = [np.mean(split, axis=0) for split in zip(*(m.probas for m in members), strict=True)]
    return _scored(y, first.n_splits, first.n_repeats, first.seed, first.test_indices, probas)


def corrected_interval(values: np.ndarray, test_train_ratio: float, confidence: float = 0.95) -> Interval:
    """Mean of per-split values with the Nadeau-Bengio corrected resampled t interval."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        raise ValueError(f"an interval needs at least 2 split scores, got {n}")
    mean = float(values.mean())
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * np.sqrt((1 / n + test_train_ratio) * values.var(ddof=1))
    return Interval(mean, float(mean - half), float(mean + half))


def _paired_p_value(differences: np.ndarray, test_train_ratio: float) -> float:
    n = len(differences)
    se = np.sqrt((1 / n + test_train_ratio) * differences.var(ddof=1))
    mean = differences.mean()
    if se == 0:  # identical on every split: no evidence either way unless the (constant) gap is non-zero
        return 1.0 if mean == 0 else 0.0
    return float(2 * stats.t.sf(abs(mean / se), n - 1))


def _holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: controls the family-wise error over the comparisons."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(np.argsort(p_values, kind="stable")):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """Every candidate's interval for one metric, and each one's paired difference from the best."""

    metric: str
    best: str
    intervals: dict[str, Interval]
    differences: dict[str, PairedDifference]  # every candidate but the best
    n_splits: int
    n_repeats: int


def compare(results: Mapping[str, CrossValidated], metric: str, *, confidence: float = 0.95) -> Comparison:
    """Intervals for `metric`, and every candidate against the one with the best mean, paired split by split.

    All candidates must have been scored on the same splits (the same rows, folds, repeats and seed).
    """
    _, higher_is_better = METRICS[metric]
    names = list(results)
    reference = results[names[0]]
    for name in names[1:]:
        if not _same_splits(results[name], reference):
            raise ValueError(f"{name} was not cross-validated on the same splits as {names[0]}")
    means = {name: results[name].mean(metric) for name in names}
    best = max(names, key=means.__getitem__) if higher_is_better else min(names, key=means.__getitem__)
    others = [name for name in names if name != best]
    ratio = reference.test_train_ratio
    diffs = {name: results[name].scores[metric] - results[best].scores[metric] for name in others}
    p_values = [_paired_p_value(diffs[name], ratio) for name in others]
    differences = {
        name: PairedDifference(
            candidate=name,
            reference=best,
            metric=metric,
            difference=corrected_interval(diffs[name], ratio, confidence),
            p_value=p,
            p_holm=p_holm,
            beyond_noise=p_holm < 1 - confidence,
        )
        for name, p, p_holm in zip(others, p_values, _holm(p_values), strict=True)
    }
    return Comparison(
        metric=metric,
        best=best,
        intervals={name: results[name].interval(metric, confidence) for name in names},
        differences=differences,
        n_splits=reference.n_splits,
        n_repeats=reference.n_repeats,
    )

"""The promotion rule: tie, small win, clear win, regression, floors, approval."""

import numpy as np
import pytest

from churn_assets.ml.promotion import Comparison, PromotionPolicy, decide, paired_auc_gain

POLICY = PromotionPolicy(min_auc_gain=0.005, confidence=0.95, n_bootstrap=500, seed=0)


def _labels_and_scores(n: int, seed: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(0, 1, n))))


def test_a_tie_keeps_the_champion() -> None:
    y, p = _labels_and_scores(1000, 0, 1.0)
    comparison = paired_auc_gain(y, p, p.copy(), POLICY)
    assert comparison.gain == 0 and comparison.gain_lower == 0
    decision = decide(comparison, [], POLICY)
    assert decision.outcome == "kept_champion"
    assert "below the margin" in decision.reason


def test_a_small_win_within_noise_keeps_the_champion() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 200)
    champion = 1 / (1 + np.exp(-(0.8 * (2 * y - 1) + rng.normal(0, 1, len(y)))))
    challenger, churners = champion.copy(), np.flatnonzero(y == 1)
    challenger[rng.choice(churners, 8, replace=False)] += 0.3  # ranks a few churners higher...
    challenger[rng.choice(churners, 3, replace=False)] -= 0.3  # ...and a few lower: a small, noisy gain
    comparison = paired_auc_gain(y, challenger, champion, POLICY)
    assert comparison.gain >= POLICY.min_auc_gain
    assert comparison.gain_lower <= 0
    decision = decide(comparison, [], POLICY)
    assert decision.outcome == "kept_champion"
    assert "not beyond noise" in decision.reason


def test_a_clear_win_is_promoted_with_both_scores_in_the_reason() -> None:
    y, champion = _labels_and_scores(2000, 3, 0.5)
    _, challenger = _labels_and_scores(2000, 3, 1.5)  # same noise, stronger signal
    comparison = paired_auc_gain(y, challenger, champion, POLICY)
    assert comparison.gain_lower > 0
    decision = decide(comparison, [], POLICY)
    assert decision.outcome == "promoted"
    assert f"{comparison.challenger_auc:.4f}" in decision.reason
    assert f"{comparison.champion_auc:.4f}" in decision.reason


def test_a_regression_keeps_the_champion() -> None:
    y, strong = _labels_and_scores(2000, 4, 1.5)
    _, weak = _labels_and_scores(2000, 4, 0.5)
    comparison = paired_auc_gain(y, weak, strong, POLICY)
    assert comparison.gain < 0
    assert decide(comparison, [], POLICY).outcome == "kept_champion"


def test_floor_failures_refuse_even_a_winner_and_approval_holds_a_winner() -> None:
    clear = Comparison(0.90, 0.80, 0.10, 0.05, 0.15, 1000)
    refused = decide(clear, ["test ROC AUC 0.70 vs floor 0.83"], POLICY)
    assert refused.outcome == "refused" and "0.70" in refused.reason
    assert decide(clear, [], POLICY, requires_approval=True).outcome == "awaiting_approval"
    assert decide(None, [], POLICY).outcome == "promoted"  # no champion yet
    assert decide(None, [], POLICY, requires_approval=True).outcome == "awaiting_approval"


def test_mismatched_rows_are_an_error() -> None:
    with pytest.raises(ValueError, match="rows differ"):
        paired_auc_gain(np.array([0, 1]), np.array([0.1, 0.9]), np.array([0.5]), POLICY)


def test_the_vectorised_auc_equals_sklearn_also_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    from churn_assets.ml.promotion import _row_auc

    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, (20, 60))
    scores = np.round(rng.random((20, 60)), 1)  # many ties
    expected = [roc_auc_score(labels[i], scores[i]) for i in range(20)]
    np.testing.assert_allclose(_row_auc(labels, scores), expected, atol=1e-12)
